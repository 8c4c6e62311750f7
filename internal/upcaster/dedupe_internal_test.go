package upcaster

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDupWindow(t *testing.T) {
	rec := func(off int64, id, value string) *kgo.Record {
		var hs []kgo.RecordHeader
		if id != "" {
			hs = append(hs, kgo.RecordHeader{Key: ceID, Value: []byte(id)})
		}
		return &kgo.Record{Key: []byte("k"), Value: []byte(value), Headers: hs, Offset: off}
	}
	tests := []struct {
		name string
		recs []*kgo.Record
		want []bool // repeat, per record
	}{
		{"exact repeat", []*kgo.Record{rec(0, "a", "v"), rec(1, "a", "v")}, []bool{false, true}},
		{"other value", []*kgo.Record{rec(0, "a", "v"), rec(1, "a", "w")}, []bool{false, false}},
		{"other ce_id", []*kgo.Record{rec(0, "a", "v"), rec(1, "b", "v")}, []bool{false, false}},
		{"no ce_id is never a repeat", []*kgo.Record{rec(0, "", "v"), rec(1, "", "v")}, []bool{false, false}},
		{"read again after an abort", []*kgo.Record{rec(0, "a", "v"), rec(1, "a", "v"), rec(0, "a", "v"), rec(1, "a", "v")},
			[]bool{false, true, false, true}},
		{"within the window", []*kgo.Record{rec(0, "a", "v"), rec(3, "a", "v")}, []bool{false, true}},
		{"past the window", []*kgo.Record{rec(0, "a", "v"), rec(4, "a", "v"), rec(5, "a", "v")}, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newDupWindow(4)
			for i, r := range tt.recs {
				if got := w.repeat(r); got != tt.want[i] {
					t.Errorf("record %d (offset %d): repeat %v, want %v", i, r.Offset, got, tt.want[i])
				}
			}
		})
	}
	t.Run("headers count, in order", func(t *testing.T) {
		w := newDupWindow(10)
		a := rec(0, "a", "v")
		b := rec(1, "a", "v")
		b.Headers = append(b.Headers, kgo.RecordHeader{Key: "x", Value: []byte("1")})
		if w.repeat(a) || w.repeat(b) {
			t.Error("a record with one more header is no repeat")
		}
	})
}

// BenchmarkDupWindow passes records shaped as ingest writes them (a small Avro value, the
// CloudEvents headers) through one raw partition's window.
func BenchmarkDupWindow(b *testing.B) {
	hs := []kgo.RecordHeader{}
	for _, k := range []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "ce_subject",
		"ce_aggregatetype", "ce_aggregateversion", "traceparent", "pyrite-principal"} {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte("0193a5f2-7c1e-7d4b-9a3e-" + k)})
	}
	w := newDupWindow(DuplicateWindow)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := &kgo.Record{Key: []byte("we-1"), Value: []byte("\x00\x00\x00\x00\x07\x02\x04\x02\x0410%"), Headers: hs, Offset: int64(i)}
		hs[1].Value = []byte{byte(i), byte(i >> 8), byte(i >> 16)} // a new ce_id each time
		w.repeat(r)
	}
}
