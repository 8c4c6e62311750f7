package projector

import (
	"maps"
	"testing"
)

// FuzzParseCursor: a cursor from outside never panics the parser, and one it accepts
// encodes back to a cursor that parses to the same positions.
func FuzzParseCursor(f *testing.F) {
	topics := []string{"pyrite.deployment.events", "pyrite.work-effort.events"}
	c := cursor{}
	c.set("pyrite.work-effort.events", 0, 3)
	c.set("pyrite.work-effort.events", 2, 41)
	f.Add(c.encode())
	f.Add("")
	f.Add("eyJ4Ijp7fX0")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCursor(s, topics)
		if err != nil {
			return
		}
		again, err := parseCursor(got.encode(), topics)
		if err != nil {
			t.Fatalf("re-encoded cursor %q: %v", got.encode(), err)
		}
		for tp, ps := range got {
			if !maps.Equal(ps, again[tp]) {
				t.Fatalf("%s: %v then %v", tp, ps, again[tp])
			}
		}
	})
}
