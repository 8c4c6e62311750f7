package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const eventsTopic = "pyrite.work-effort.events"

func lifecycle(s *stacktest.Stack, t *testing.T, id string, at time.Time) []*kgo.Record {
	return []*kgo.Record{
		s.Record(t, eventsTopic, "WorkEffort:Created", id, 0, map[string]any{"title": "T " + id, "description": "d", "createdAt": at, "assignee": "ada@example.com"}),
		s.Record(t, eventsTopic, "WorkEffort:Started", id, 0, map[string]any{"title": "T " + id, "startedAt": at.Add(time.Minute)}),
		s.Record(t, eventsTopic, "WorkEffort:ProgressUpdated", id, 0, map[string]any{"oldProgress": 0, "newProgress": 60, "delta": 60, "formatted": "60%"}),
		s.Record(t, eventsTopic, "WorkEffort:Completed", id, 0, map[string]any{"title": "T " + id, "completedAt": at.Add(time.Hour), "duration": int64(3600000), "ticketCount": 3, "assigneeEmail": nil}),
	}
}

func startProjector(t *testing.T, s *stacktest.Stack, storeURL string) (string, func()) {
	t.Helper()
	return startProjectorOpts(t, s, storeURL, 0)
}

func startProjectorOpts(t testing.TB, s *stacktest.Stack, storeURL string, batchSize int) (string, func()) {
	t.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- projector.Run(ctx, ln, projector.Options{
			Brokers: s.Brokers, Registry: s.RegistryURL, Store: storeURL, Topology: s.Topology, ReadModels: s.ReadModels,
			Metrics: prometheus.NewRegistry(), BatchWait: 10 * time.Millisecond, BatchSize: batchSize,
		})
	}()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projector.Run: %v", err)
		}
	}
	return "http://" + ln.Addr().String(), stop
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

func TestQueryAPI(t *testing.T) {
	s := stacktest.Start(t)
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 3 {
		recs = append(recs, lifecycle(s, t, fmt.Sprintf("we-%d", i), at)...)
	}
	recs = append(recs, s.Record(t, eventsTopic, "WorkEffort:Created", "we-planned", 0,
		map[string]any{"title": "later", "description": nil, "createdAt": at, "assignee": nil}))
	s.Produce(t, recs...)
	url, stop := startProjector(t, s, filepath.Join(t.TempDir(), "p.db"))
	defer stop()

	t.Run("minVersion waits for the fold", func(t *testing.T) {
		var we map[string]any
		if code := getJSON(t, url+"/v1/work-efforts/we-1?minVersion=4", &we); code != 200 {
			t.Fatalf("status %d", code)
		}
		want := map[string]any{"id": "we-1", "title": "T we-1", "status": "completed", "progress": float64(100), "version": float64(4)} // Completed sets 100, as the seed does
		for k, v := range want {
			if we[k] != v {
				t.Errorf("%s = %v, want %v", k, we[k], v)
			}
		}
		for _, k := range []string{"createdAt", "startedAt", "completedAt"} {
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(we[k])); err != nil {
				t.Errorf("%s = %v", k, we[k])
			}
		}
	})
	t.Run("unknown is 404", func(t *testing.T) {
		if code := getJSON(t, url+"/v1/work-efforts/nope", nil); code != 404 {
			t.Errorf("status %d", code)
		}
	})
	t.Run("list by status with cursor", func(t *testing.T) {
		var page struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"nextCursor"`
		}
		getJSON(t, url+"/v1/work-efforts?minVersion=0&status=planned", &page)
		deadline := time.Now().Add(10 * time.Second)
		for len(page.Items) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			getJSON(t, url+"/v1/work-efforts?status=planned", &page)
		}
		if len(page.Items) != 1 || page.Items[0]["id"] != "we-planned" {
			t.Fatalf("planned: %+v", page.Items)
		}
		for i := range 3 { // every lifecycle applied, whatever its partition
			if code := getJSON(t, fmt.Sprintf("%s/v1/work-efforts/we-%d?minVersion=4", url, i), nil); code != 200 {
				t.Fatalf("we-%d: status %d", i, code)
			}
		}
		getJSON(t, url+"/v1/work-efforts?status=completed&limit=2", &page)
		if len(page.Items) != 2 || page.NextCursor == "" {
			t.Fatalf("first page: %+v next %q", page.Items, page.NextCursor)
		}
		first := page.Items[0]["id"]
		getJSON(t, url+"/v1/work-efforts?status=completed&limit=2&cursor="+page.NextCursor, &page)
		if len(page.Items) != 1 || page.Items[0]["id"] == first || page.NextCursor != "" {
			t.Fatalf("second page: %+v next %q", page.Items, page.NextCursor)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"/v1/work-efforts?status=lost", "/v1/work-efforts?limit=-1", "/v1/work-efforts?cursor=zzz", "/v1/work-efforts/we-1?minVersion=x"} {
			if code := getJSON(t, url+q, nil); code != 400 {
				t.Errorf("%s: status %d", q, code)
			}
		}
	})
	t.Run("projections report positions and lag", func(t *testing.T) {
		var body struct {
			Projections []projector.Status `json:"projections"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			getJSON(t, url+"/v1/projections", &body)
			if len(body.Projections) == 1 && body.Projections[0].Lag == 0 && len(body.Projections[0].Partitions) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("projections never caught up: %+v", body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p := body.Projections[0]
		var total int64
		for _, ps := range p.Partitions {
			total += ps.Position
		}
		if p.Name != "work-efforts" || p.Group != "work-efforts" || p.State != "running" || total != int64(len(recs)) {
			t.Errorf("projection %+v (positions sum %d, want %d)", p, total, len(recs))
		}
	})
	t.Run("a new event invalidates the cached read", func(t *testing.T) {
		var we map[string]any
		getJSON(t, url+"/v1/work-efforts/we-planned", &we) // cached now
		s.Produce(t, s.Record(t, eventsTopic, "WorkEffort:Started", "we-planned", 0, map[string]any{"title": "later", "startedAt": at}))
		if code := getJSON(t, url+"/v1/work-efforts/we-planned?minVersion=2", &we); code != 200 || we["status"] != "in-progress" {
			t.Fatalf("status %d: %v", code, we)
		}
		getJSON(t, url+"/v1/work-efforts/we-planned", &we)
		if we["status"] != "in-progress" {
			t.Errorf("plain read after the update served %v", we["status"])
		}
	})
}
