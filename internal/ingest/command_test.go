package ingest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
)

func command(typ, id, data string) string {
	return fmt.Sprintf(`{"type":%q,"aggregateId":%q,"data":%s}`, typ, id, data)
}

// TestCommands runs the seed's WorkEffort commands through POST /v1/commands: a 201 with the
// decided events (ProgressUpdated with delta and formatted computed), a 422 naming each
// invariant a command breaks, and nothing written by a 422.
func TestCommands(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	post := func(t *testing.T, body string) (int, map[string]any) {
		t.Helper()
		code, _, out := h.post(t, ingest.CommandPath, "application/json", body)
		return code, out
	}
	for _, step := range []struct {
		name      string
		body      string
		status    int
		invariant string         // of a 422
		data      map[string]any // fields of the 201's event
	}{
		{"progress before created", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":10}`), 422, workeffort.InvariantNotCreated, nil},
		{"start before created", command(workeffort.CommandStart, "we-c", `{}`), 422, workeffort.InvariantNotCreated, nil},
		{"create", command(workeffort.CommandCreate, "we-c", `{"title":"Ship it","assignee":"ada@example.com"}`), 201, "", map[string]any{"title": "Ship it"}},
		{"create twice", command(workeffort.CommandCreate, "we-c", `{"title":"Again"}`), 422, workeffort.InvariantAlreadyCreated, nil},
		{"complete before started", command(workeffort.CommandComplete, "we-c", `{}`), 422, workeffort.InvariantStartedBefore, nil},
		{"start", command(workeffort.CommandStart, "we-c", `{}`), 201, "", map[string]any{"title": "Ship it"}},
		{"start twice", command(workeffort.CommandStart, "we-c", `{}`), 422, workeffort.InvariantStartedOnce, nil},
		{"progress above 100", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":101}`), 422, workeffort.InvariantProgressRange, nil},
		{"progress below 0", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":-1}`), 422, workeffort.InvariantProgressRange, nil},
		{"progress not a number", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":"half"}`), 422, workeffort.InvariantFields, nil},
		{"progress", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":30}`), 201, "",
			map[string]any{"oldProgress": float64(0), "newProgress": float64(30), "delta": float64(30), "formatted": "30%"}},
		{"progress down", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":25}`), 201, "",
			map[string]any{"oldProgress": float64(30), "newProgress": float64(25), "delta": float64(-5), "formatted": "25%"}},
		{"complete", command(workeffort.CommandComplete, "we-c", `{"ticketCount":2}`), 201, "", map[string]any{"ticketCount": float64(2)}},
		{"progress on completed", command(workeffort.CommandUpdateProgress, "we-c", `{"newProgress":50}`), 422, workeffort.InvariantNotCompleted, nil},
		{"complete twice", command(workeffort.CommandComplete, "we-c", `{}`), 422, workeffort.InvariantNotCompleted, nil},
		{"unknown command", command("WorkEffort:Teleport", "we-c", `{}`), 422, "", nil},
		{"no aggregate id", `{"type":"WorkEffort:Start","data":{}}`, 400, "", nil},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := h.stack.EndOffsets(t, rawTopic)[rawTopic]
			code, out := post(t, step.body)
			if code != step.status {
				t.Fatalf("status %d, want %d: %v", code, step.status, out)
			}
			after := h.stack.EndOffsets(t, rawTopic)[rawTopic]
			if code != 201 {
				if after != before {
					t.Errorf("a %d wrote: end offsets %d -> %d", code, before, after)
				}
				if step.invariant != "" && !strings.HasSuffix(out["type"].(string), ":invariant-"+step.invariant) {
					t.Errorf("problem type %v, want the invariant %s", out["type"], step.invariant)
				}
				return
			}
			evs, _ := out["events"].([]any)
			if len(evs) != 1 || after <= before { // an append is a record and its transaction's marker
				t.Fatalf("201 with %d events, end offset %d -> %d: %v", len(evs), before, after, out)
			}
			ev := evs[0].(map[string]any)
			data, _ := ev["data"].(map[string]any)
			for k, want := range step.data {
				if data[k] != want {
					t.Errorf("data.%s = %v, want %v (event %v)", k, data[k], want, ev)
				}
			}
		})
	}
	// The stream folds to what the commands decided.
	resp, err := http.Get(h.url + "/v1/streams/we-c/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st workeffort.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("state: %d %v", resp.StatusCode, err)
	}
	if st.Status != workeffort.StatusCompleted || st.Progress != 100 || st.Version != 5 || st.Assignee != "ada@example.com" {
		t.Errorf("state %+v", st)
	}
}

// TestCommandRetriesConflicts forces a concurrent append between every load and append of a
// command: the command is decided again on the newer stream, CommandAttempts times, then
// answered 409. A single forced conflict is absorbed by the retry.
func TestCommandRetriesConflicts(t *testing.T) {
	var (
		url      atomic.Value
		decides  atomic.Int64
		conflict atomic.Int64 // how many more decisions append behind the command's back
	)
	rival := func(state any, _ map[string]any) ([]eventstore.Decision, error) {
		decides.Add(1)
		s := state.(workeffort.State)
		if conflict.Add(-1) >= 0 {
			body := progressEvent(s.ID, "", -1, s.Progress, s.Progress+1)
			resp, err := http.Post(url.Load().(string)+"/v1/events", "application/json", strings.NewReader(body))
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			if resp.StatusCode != 201 {
				return nil, fmt.Errorf("rival append: %d", resp.StatusCode)
			}
		}
		return []eventstore.Decision{{Type: workeffort.TypeProgressUpdated, Data: map[string]any{
			"oldProgress": s.Progress, "newProgress": 90, "delta": 90 - s.Progress, "formatted": "90%"}}}, nil
	}
	fold := func(st eventstore.Stream) (any, error) { return workeffort.Rebuild(st) }
	h := newHarness(t, "", nil, ingest.Config{
		Folds:    map[string]eventstore.Fold{workeffort.Aggregate: fold},
		Commands: map[string]eventstore.Command{"Test:Rival": {Aggregate: workeffort.Aggregate, Fold: fold, Decide: rival}},
	})
	url.Store(h.url)
	if code, _, out := h.post(t, "/v1/events", "application/json", strings.Replace(created, "we-1", "we-r", 1)); code != 201 {
		t.Fatalf("created: %d %v", code, out)
	}
	t.Run("one conflict is retried", func(t *testing.T) {
		decides.Store(0)
		conflict.Store(1)
		code, _, out := h.post(t, ingest.CommandPath, "application/json", command("Test:Rival", "we-r", `{}`))
		if code != 201 || decides.Load() != 2 {
			t.Fatalf("status %d after %d decisions, want 201 after 2: %v", code, decides.Load(), out)
		}
		ev := out["events"].([]any)[0].(map[string]any)
		if ev["version"] != float64(3) { // created, the rival's, the command's
			t.Errorf("version %v, want 3", ev["version"])
		}
	})
	t.Run("409 after the attempts", func(t *testing.T) {
		decides.Store(0)
		conflict.Store(ingest.CommandAttempts)
		before := version(t, h.url, "we-r")
		code, _, out := h.post(t, ingest.CommandPath, "application/json", command("Test:Rival", "we-r", `{}`))
		if code != 409 || decides.Load() != ingest.CommandAttempts {
			t.Fatalf("status %d after %d decisions, want 409 after %d: %v", code, decides.Load(), ingest.CommandAttempts, out)
		}
		if !strings.HasSuffix(out["type"].(string), ":version-conflict") || out["currentVersion"] == nil {
			t.Errorf("problem %v", out)
		}
		// Only the rival's appends were written.
		if got := version(t, h.url, "we-r") - before; got != ingest.CommandAttempts {
			t.Errorf("the stream moved %d versions, want the rival's %d", got, ingest.CommandAttempts)
		}
	})
}

// version reads the version of a WorkEffort stream.
func version(t *testing.T, url, id string) int {
	t.Helper()
	resp, err := http.Get(url + "/v1/streams/" + id + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Version int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("version of %s: %d %v", id, resp.StatusCode, err)
	}
	return out.Version
}
