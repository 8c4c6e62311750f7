package projector_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestKeepsUpAfterCatchingUp: a projector that applied everything it found
// goes on applying what arrives later.
func TestKeepsUpAfterCatchingUp(t *testing.T) {
	s := stacktest.Start(t)
	mk := func(n, from int) []*kgo.Record {
		var recs []*kgo.Record
		for i := range n {
			id := fmt.Sprintf("we-%d", (from+i)%40)
			recs = append(recs, s.Record(t, eventsTopic, "WorkEffort:ProgressUpdated", id, 0,
				map[string]any{"oldProgress": 0, "newProgress": 1, "delta": 1, "formatted": "1%"}))
		}
		return recs
	}
	s.Produce(t, mk(1500, 0)...)
	url, stop := startProjectorOpts(t, s, filepath.Join(t.TempDir(), "p.db"), 50)
	defer stop()
	waitPositions(t, url, 1500)
	s.Produce(t, mk(300, 1500)...)
	waitPositions(t, url, 1800)
}

func waitPositions(t testing.TB, url string, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var body struct {
			Projections []projector.Status `json:"projections"`
		}
		getJSON(t, url+"/v1/projections", &body)
		var sum int64
		if len(body.Projections) == 1 {
			for _, p := range body.Projections[0].Partitions {
				sum += p.Position
			}
		}
		if sum >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("positions %d of %d: %+v", sum, n, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNewStoreStartsFromTheBeginning: the store, not the group's committed
// Kafka offsets, says where a projection is; an empty store rebuilds all.
func TestNewStoreStartsFromTheBeginning(t *testing.T) {
	s := stacktest.Start(t)
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, s.Record(t, eventsTopic, "WorkEffort:ProgressUpdated", fmt.Sprintf("we-%d", i%10), 0,
			map[string]any{"oldProgress": 0, "newProgress": 1, "delta": 1, "formatted": "1%"}))
	}
	s.Produce(t, recs...)
	dir := t.TempDir()
	url, stop := startProjectorOpts(t, s, filepath.Join(dir, "first.db"), 50)
	waitPositions(t, url, 200)
	stop()
	url, stop = startProjectorOpts(t, s, filepath.Join(dir, "second.db"), 50)
	defer stop()
	waitPositions(t, url, 200)
	var we map[string]any
	if code := getJSON(t, url+"/v1/work-efforts/we-3", &we); code != 200 || we["version"] != float64(20) {
		t.Fatalf("status %d: %v", code, we)
	}
}
