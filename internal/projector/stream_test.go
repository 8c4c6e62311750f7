package projector_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// versioned is a work effort's four events with aggregate versions 1 to 4.
func versioned(s *stacktest.Stack, t *testing.T, id string) []*kgo.Record {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	return []*kgo.Record{
		s.Record(t, eventsTopic, "WorkEffort:Created", id, 1, map[string]any{"title": "T " + id, "description": "d", "createdAt": at, "assignee": nil}),
		s.Record(t, eventsTopic, "WorkEffort:Started", id, 2, map[string]any{"title": "T " + id, "startedAt": at.Add(time.Minute)}),
		s.Record(t, eventsTopic, "WorkEffort:ProgressUpdated", id, 3, map[string]any{"oldProgress": 0, "newProgress": 60, "delta": 60, "formatted": "60%"}),
		s.Record(t, eventsTopic, "WorkEffort:Completed", id, 4, map[string]any{"title": "T " + id, "completedAt": at.Add(time.Hour), "duration": int64(3600000), "ticketCount": 3, "assigneeEmail": nil}),
	}
}

func ceIDs(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == "ce_id" {
				out = append(out, string(h.Value))
			}
		}
	}
	return out
}

func TestStream(t *testing.T) {
	s := stacktest.Start(t)
	storeURL := filepath.Join(t.TempDir(), "p.db")
	url, stop := startProjector(t, s, storeURL)
	const wait = 20 * time.Second

	live := dialStream(t, url+"/v1/stream", "")
	live.expect(t, "ready", wait)
	a := versioned(s, t, "we-a")
	s.Produce(t, a...)
	got, ids := live.appliedN(t, 4, wait)

	t.Run("live messages carry the event and the read model after it", func(t *testing.T) {
		want := []struct {
			typ, status string
			progress    int
		}{{"WorkEffort:Created", "planned", 0}, {"WorkEffort:Started", "in-progress", 0}, {"WorkEffort:ProgressUpdated", "in-progress", 60}, {"WorkEffort:Completed", "completed", 100}}
		for i, w := range want {
			g := got[i]
			if g.Event.Type != w.typ || g.Event.AggregateID != "we-a" || g.Event.Version != int64(i+1) || g.Event.ID != ceIDs(a)[i] {
				t.Errorf("message %d: event %+v, want %s of we-a version %d", i, g.Event, w.typ, i+1)
			}
			if g.ReadModel == nil || g.ReadModel.Status != w.status || g.ReadModel.Progress != w.progress || g.ReadModel.Version != int64(i+1) {
				t.Errorf("message %d (%s): read model %+v, want %s at %d, version %d", i, w.typ, g.ReadModel, w.status, w.progress, i+1)
			}
		}
		if got[2].Event.Data["newProgress"] != float64(60) {
			t.Errorf("ProgressUpdated data = %v", got[2].Event.Data)
		}
	})

	t.Run("Last-Event-ID resumes after that message", func(t *testing.T) {
		c := dialStream(t, url+"/v1/stream", ids[1])
		rest, _ := c.appliedN(t, 2, wait)
		if rest[0].Event.ID != ceIDs(a)[2] || rest[1].Event.ID != ceIDs(a)[3] {
			t.Fatalf("replayed %s, %s; want %v", rest[0].Event.ID, rest[1].Event.ID, ceIDs(a)[2:])
		}
		// The stored read model is version 4's: only the message that reached it carries it.
		if rest[0].ReadModel != nil {
			t.Errorf("replayed ProgressUpdated carries a read model that is not its own: %+v", rest[0].ReadModel)
		}
		if rest[1].ReadModel == nil || rest[1].ReadModel.Status != "completed" || rest[1].ReadModel.Version != 4 {
			t.Errorf("replayed Completed read model = %+v", rest[1].ReadModel)
		}
		ready := c.expect(t, "ready", wait)
		if ready.ID != ids[3] {
			t.Errorf("ready id %q, want the last message's %q", ready.ID, ids[3])
		}
	})

	t.Run("a bad Last-Event-ID is 400", func(t *testing.T) {
		var problem map[string]any
		if code := getJSONHeader(t, url+"/v1/stream", "Last-Event-ID", "p1.%%%", &problem); code != 400 {
			t.Errorf("status %d", code)
		}
		if code := getJSONHeader(t, url+"/v1/stream?types=WorkEffort::x", "", "", &problem); code != 400 {
			t.Errorf("bad pattern: status %d", code)
		}
	})

	// The projector goes; events arrive meanwhile; a new projector on the same store
	// serves a client resuming from the last message it had.
	live.Close()
	stop()
	b, c := versioned(s, t, "we-b"), versioned(s, t, "we-c")
	s.Produce(t, append(b, c...)...)
	url, stop = startProjector(t, s, storeURL)
	defer stop()

	t.Run("resumes across a projector restart without gap or repeat", func(t *testing.T) {
		cl := dialStream(t, url+"/v1/stream", ids[3])
		want := append(ceIDs(b), ceIDs(c)...)
		seen := map[string]int{}
		for len(seen) < len(want) {
			m, err := cl.next()
			if err != nil {
				t.Fatalf("after %d events: %v", len(seen), err)
			}
			if m.Event != "applied" {
				continue // "ready" comes between the replayed and the live events
			}
			var ap applied
			if err := json.Unmarshal([]byte(m.Data), &ap); err != nil {
				t.Fatal(err)
			}
			seen[ap.Event.ID]++
			if seen[ap.Event.ID] > 1 {
				t.Fatalf("event %s (%s of %s) sent twice", ap.Event.ID, ap.Event.Type, ap.Event.AggregateID)
			}
		}
		for _, id := range want {
			if seen[id] != 1 {
				t.Errorf("event %s sent %d times", id, seen[id])
			}
		}
		// Nothing more is pending: the next event is a new one.
		d := s.Record(t, eventsTopic, "WorkEffort:Created", "we-d", 1, map[string]any{"title": "d", "description": nil, "createdAt": time.Now(), "assignee": nil})
		s.Produce(t, d)
		for {
			m, err := cl.next()
			if err != nil {
				t.Fatal(err)
			}
			if m.Event == "ready" {
				continue
			}
			var ap applied
			if err := json.Unmarshal([]byte(m.Data), &ap); err != nil {
				t.Fatal(err)
			}
			if ap.Event.ID != ceIDs([]*kgo.Record{d})[0] {
				t.Fatalf("after the backlog came %s of %s, want we-d's Created", ap.Event.Type, ap.Event.AggregateID)
			}
			break
		}
	})

	t.Run("types and aggregate filter", func(t *testing.T) {
		cl := dialStream(t, url+"/v1/stream?types=*:Completed,WorkEffort:Created&aggregate=we-b", ids[3])
		got, _ := cl.appliedN(t, 2, wait)
		for i, w := range []string{"WorkEffort:Created", "WorkEffort:Completed"} {
			if got[i].Event.Type != w || got[i].Event.AggregateID != "we-b" {
				t.Errorf("message %d: %s of %s, want %s of we-b", i, got[i].Event.Type, got[i].Event.AggregateID, w)
			}
		}
		cl.expect(t, "ready", wait)
	})
}

// getJSONHeader is getJSON with one request header (none when name is "").
func getJSONHeader(t testing.TB, url, name, value string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if name != "" {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, v)
	return resp.StatusCode
}
