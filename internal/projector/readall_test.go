package projector_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

type readAllPage struct {
	Events []struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		AggregateID string `json:"aggregateId"`
		Topic       string `json:"topic"`
		Partition   int32  `json:"partition"`
		Offset      int64  `json:"offset"`
		Error       string `json:"error"`
	} `json:"events"`
	NextCursor string `json:"nextCursor"`
}

// readAll pages through GET /v1/events from cursor with limit until an empty page, and
// returns every event's position ("topic[p]@o"), type and aggregate in order, and the last
// cursor.
func readAll(t *testing.T, base, cursor, query string, limit int) (positions, types, aggregates []string, next string) {
	t.Helper()
	for range 1000 {
		var page readAllPage
		url := fmt.Sprintf("%s/v1/events?limit=%d&from=%s%s", base, limit, cursor, query)
		if code := getJSON(t, url, &page); code != http.StatusOK {
			t.Fatalf("%s: status %d", url, code)
		}
		if len(page.Events) > limit || page.NextCursor == "" {
			t.Fatalf("page of %d for limit %d, next %q", len(page.Events), limit, page.NextCursor)
		}
		cursor = page.NextCursor
		if len(page.Events) == 0 {
			return positions, types, aggregates, cursor
		}
		for _, e := range page.Events {
			if e.Error != "" {
				t.Errorf("event at %s[%d]@%d: %s", e.Topic, e.Partition, e.Offset, e.Error)
			}
			positions = append(positions, fmt.Sprintf("%s[%d]@%d", e.Topic, e.Partition, e.Offset))
			types = append(types, e.Type)
			aggregates = append(aggregates, e.AggregateID)
		}
	}
	t.Fatal("readAll never reached an empty page")
	return
}

// TestReadAll: paging GET /v1/events with any page size returns every event once, in one
// stable order that keeps each aggregate's order; events written while paging come later,
// nothing repeated; types filters; a bad cursor is 400.
func TestReadAll(t *testing.T) {
	s := stacktest.Start(t)
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 8 {
		recs = append(recs, lifecycle(s, t, fmt.Sprintf("we-%d", i), at.Add(time.Duration(i)*time.Second))...)
	}
	s.Produce(t, recs...)
	// A transaction's records: its commit marker takes an offset readAll must step over.
	txn, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.TransactionalID("readall-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnRecs := lifecycle(s, t, "we-txn", at)
	if err := txn.ProduceSync(t.Context(), txnRecs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	recs = append(recs, txnRecs...)
	base, stop := startProjector(t, s, filepath.Join(t.TempDir(), "p.db"))
	defer stop()

	want := make([]string, 0, len(recs))
	for _, r := range recs {
		want = append(want, fmt.Sprintf("%s[%d]@%d", r.Topic, r.Partition, r.Offset))
	}
	slices.Sort(want)
	var first []string
	for _, limit := range []int{1, 7, 1000} {
		got, _, aggs, _ := readAll(t, base, "", "", limit)
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, want) {
			t.Fatalf("limit %d: read %d events %v, want each of %d once %v", limit, len(got), got, len(want), want)
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			t.Errorf("limit %d: order %v differs from limit 1's %v", limit, got, first)
		}
		// Each aggregate's events in offset order (its partition's order).
		last := map[string]int64{}
		for i, a := range aggs {
			_, off, _ := strings.Cut(got[i], "@")
			o, _ := strconv.ParseInt(off, 10, 64)
			if prev, ok := last[a]; ok && prev >= o {
				t.Errorf("limit %d: %s's offset %d before %d", limit, a, prev, o)
			}
			last[a] = o
		}
	}

	t.Run("events written while paging come after, none repeated", func(t *testing.T) {
		got, _, _, cursor := readAll(t, base, "", "", 5)
		if len(got) != len(recs) {
			t.Fatalf("read %d, want %d", len(got), len(recs))
		}
		more := lifecycle(s, t, "we-late", at)
		s.Produce(t, more...)
		later, _, aggs, _ := readAll(t, base, cursor, "", 3)
		if len(later) != len(more) {
			t.Fatalf("after the cursor: %v, want the %d new events", later, len(more))
		}
		for _, a := range aggs {
			if a != "we-late" {
				t.Errorf("after the cursor: an event of %s", a)
			}
		}
	})
	t.Run("types", func(t *testing.T) {
		_, types, _, _ := readAll(t, base, "", "&types=WorkEffort:Completed,*:Started", 4)
		if n := len(types); n != 2*10 {
			t.Errorf("%d events of the two types, want 20: %v", n, types)
		}
		for _, ty := range types {
			if ty != "WorkEffort:Completed" && ty != "WorkEffort:Started" {
				t.Errorf("type %s let through", ty)
			}
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"from=!!!", "from=eyJ4Ijp7fX0", "limit=0", "limit=1001", "types=WorkEffort::X"} {
			if code := getJSON(t, base+"/v1/events?"+q, nil); code != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", q, code)
			}
		}
	})
}
