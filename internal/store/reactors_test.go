package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/store"
)

func outboxRec(id string, src store.TopicPartition) store.OutboxRecord {
	return store.OutboxRecord{
		EventID: id, Topic: "pyrite.work-effort.raw", Key: []byte("we-1"), Value: []byte{0, 0, 0, 0, 7, 0xff},
		Headers: []store.Header{{Key: "ce_id", Value: []byte(id)}, {Key: "bin", Value: []byte{0, 1, 2}}},
		Source:  src,
	}
}

func eventIDs(recs []store.OutboxRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.EventID)
	}
	return out
}

func TestOutbox(t *testing.T) {
	p0 := store.TopicPartition{Topic: "t", Partition: 0}
	p1 := store.TopicPartition{Topic: "t", Partition: 1}
	none := store.TopicPartition{Partition: -1}
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		var seqs []int64
		err := s.Update(t.Context(), "saga", func(tx *store.Tx) error {
			var err error
			seqs, err = tx.AddOutbox("saga", outboxRec("a", p0), outboxRec("b", p1), outboxRec("c", p0), outboxRec("d", none))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(seqs) || seqs[0] == 0 || slices.Contains(seqs, 0) {
			t.Fatalf("sequence numbers %v, want increasing and non-zero", seqs)
		}

		t.Run("round trip of key, value and headers", func(t *testing.T) {
			recs, err := s.Outbox(t.Context(), "saga", store.OutboxFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if got := eventIDs(recs); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
				t.Fatalf("records %v", got)
			}
			r := recs[0]
			if string(r.Key) != "we-1" || !slices.Equal(r.Value, []byte{0, 0, 0, 0, 7, 0xff}) || len(r.Headers) != 2 ||
				!slices.Equal(r.Headers[1].Value, []byte{0, 1, 2}) || r.Source != p0 || r.CreatedAt.IsZero() {
				t.Errorf("record %+v", r)
			}
			if recs[3].Source != none {
				t.Errorf("source of d = %+v, want none", recs[3].Source)
			}
		})
		tests := []struct {
			name   string
			filter store.OutboxFilter
			want   []string
		}{
			{"by source partition", store.OutboxFilter{Source: &p0}, []string{"a", "c"}},
			{"without source", store.OutboxFilter{Source: &none}, []string{"d"}},
			{"limit keeps the oldest", store.OutboxFilter{Limit: 2}, []string{"a", "b"}},
			{"queued before a past time", store.OutboxFilter{Before: time.Now().Add(-time.Hour)}, nil},
			{"queued before a future time", store.OutboxFilter{Before: time.Now().Add(time.Hour)}, []string{"a", "b", "c", "d"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				recs, err := s.Outbox(t.Context(), "saga", tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				if got := eventIDs(recs); !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
		t.Run("an event id waiting is not queued twice", func(t *testing.T) {
			err := s.Update(t.Context(), "saga", func(tx *store.Tx) error {
				got, err := tx.AddOutbox("saga", outboxRec("a", p0), outboxRec("e", p0))
				if err == nil && (got[0] != 0 || got[1] <= seqs[3]) {
					t.Errorf("seqs %v, want [0 >%d]", got, seqs[3])
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		t.Run("other consumers are separate", func(t *testing.T) {
			if recs, err := s.Outbox(t.Context(), "other", store.OutboxFilter{}); err != nil || len(recs) != 0 {
				t.Errorf("other consumer's outbox: %v, %v", eventIDs(recs), err)
			}
		})
		t.Run("delete", func(t *testing.T) {
			if err := s.DeleteOutbox(t.Context(), "saga", seqs[0], seqs[2], 999999); err != nil {
				t.Fatal(err)
			}
			recs, err := s.Outbox(t.Context(), "saga", store.OutboxFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if got := eventIDs(recs); !slices.Equal(got, []string{"b", "d", "e"}) {
				t.Errorf("after delete: %v", got)
			}
		})
		t.Run("rolled back with its transaction", func(t *testing.T) {
			boom := errors.New("boom")
			err := s.Update(t.Context(), "saga", func(tx *store.Tx) error {
				if _, err := tx.AddOutbox("saga", outboxRec("rolled-back", p0)); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Update: %v, want boom", err)
			}
			recs, _ := s.Outbox(t.Context(), "saga", store.OutboxFilter{})
			if slices.Contains(eventIDs(recs), "rolled-back") {
				t.Error("record of a rolled back transaction is in the outbox")
			}
		})
		t.Run("commits with the positions of a batch", func(t *testing.T) {
			evs := []store.Event{{ID: "x", Type: "WorkEffort:Started", AggregateID: "we-1", Topic: "t", Partition: 0, Offset: 41}}
			apply := func(tx *store.Tx, ev store.Event) error {
				_, err := tx.AddOutbox("saga", outboxRec("from-batch", p0))
				return err
			}
			if err := s.ApplyBatch(t.Context(), "saga", evs, apply); err != nil {
				t.Fatal(err)
			}
			pos, err := s.Positions(t.Context(), "saga")
			if err != nil || pos[p0] != 42 {
				t.Errorf("position %d (%v), want 42", pos[p0], err)
			}
			recs, _ := s.Outbox(t.Context(), "saga", store.OutboxFilter{})
			if !slices.Contains(eventIDs(recs), "from-batch") {
				t.Error("record queued in ApplyBatch is missing")
			}
		})
	})
}
