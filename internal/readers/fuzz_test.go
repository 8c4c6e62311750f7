package readers

import (
	"testing"
	"time"
)

// FuzzParse: a record of pyrite.readers (anyone may write one) never panics Parse, and a
// reader it accepts makes a record that parses back to the same reader.
func FuzzParse(f *testing.F) {
	good, err := Reader{Group: "g", Type: "WorkEffort:Created", Subject: "pyrite.workeffort.Created", Version: 1,
		Schema: `"string"`, Instance: "i", Time: time.Unix(1, 0).UTC()}.Record()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.Key, good.Value)
	f.Add([]byte("g|T"), []byte(`{"group":"g","type":"T"}`))
	f.Add([]byte("x"), []byte(`null`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r, ok, err := Parse(key, value)
		if err != nil || !ok {
			return
		}
		rec, err := r.Record()
		if err != nil {
			t.Fatalf("accepted %+v, but it makes no record: %v", r, err)
		}
		again, ok, err := Parse(rec.Key, rec.Value)
		if err != nil || !ok || again.Group != r.Group || again.Type != r.Type || again.Schema != r.Schema || again.Version != r.Version || !again.Time.Equal(r.Time) {
			t.Fatalf("round trip: %+v then %+v (%v)", r, again, err)
		}
	})
}
