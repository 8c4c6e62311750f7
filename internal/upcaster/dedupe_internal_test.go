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
