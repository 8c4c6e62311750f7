package compat_test

import (
	"slices"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// FuzzCheck feeds two arbitrary schema texts to Check. It must not panic, must
// give the same answer twice, never messages alongside an error, and a schema
// that parses must be fully compatible with itself.
func FuzzCheck(f *testing.F) {
	for _, tc := range resolutionCases {
		f.Add(tc.reader, tc.writer)
	}
	f.Add(`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"R"}}]}`, `"null"`)
	f.Add(`[`, `{"type":`)
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, sb := compat.Schema{Text: a}, compat.Schema{Text: b}
		msgs, err := compat.Check(compat.FullTransitive, sa, []compat.Schema{sb})
		if err != nil && msgs != nil {
			t.Fatalf("messages %q alongside error %v", msgs, err)
		}
		again, err2 := compat.Check(compat.FullTransitive, sa, []compat.Schema{sb})
		if (err == nil) != (err2 == nil) || !slices.Equal(msgs, again) {
			t.Fatalf("second run differs: %q, %v vs %q, %v", msgs, err, again, err2)
		}
		self, err := compat.Check(compat.FullTransitive, sa, []compat.Schema{sa})
		if err == nil && len(self) != 0 {
			t.Fatalf("schema incompatible with itself: %q", self)
		}
	})
}
