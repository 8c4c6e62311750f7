package projector_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseMsg is one server-sent event.
type sseMsg struct {
	ID, Event, Data string
}

// sseClient reads a /v1/stream response.
type sseClient struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// dialStream opens url with Last-Event-ID last (when set) and fails t unless it answers 200.
func dialStream(t testing.TB, url, last string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	c := &sseClient{resp: resp, r: bufio.NewReaderSize(resp.Body, 64<<10), cancel: cancel}
	t.Cleanup(c.Close)
	return c
}

func (c *sseClient) Close() { c.cancel(); c.resp.Body.Close() }

// next returns the next message (comments and retry lines skipped).
func (c *sseClient) next() (sseMsg, error) {
	var m sseMsg
	var data []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return m, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if m.Event == "" && data == nil && m.ID == "" {
				continue // a comment's or retry's end
			}
			m.Data = strings.Join(data, "\n")
			return m, nil
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.ID = value
		case "event":
			m.Event = value
		case "data":
			data = append(data, value)
		}
	}
}

// applied is an "applied" message's data, as far as tests look.
type applied struct {
	Event struct {
		ID          string         `json:"id"`
		Type        string         `json:"type"`
		AggregateID string         `json:"aggregateId"`
		Version     int64          `json:"version"`
		Data        map[string]any `json:"data"`
	} `json:"event"`
	ReadModel *struct {
		Status   string `json:"status"`
		Progress int    `json:"progress"`
		Version  int64  `json:"version"`
	} `json:"readModel"`
	Position struct {
		Partition int32 `json:"partition"`
		Offset    int64 `json:"offset"`
	} `json:"position"`
}

// expect reads the next message and fails t unless it is of event type name and arrives
// within timeout.
func (c *sseClient) expect(t testing.TB, name string, timeout time.Duration) sseMsg {
	t.Helper()
	timer := time.AfterFunc(timeout, c.cancel)
	defer timer.Stop()
	for {
		m, err := c.next()
		if err != nil {
			t.Fatalf("waiting for %q: %v", name, err)
		}
		if m.Event != name {
			t.Fatalf("waiting for %q: got %q: %s", name, m.Event, m.Data)
		}
		return m
	}
}

// appliedN reads n applied messages.
func (c *sseClient) appliedN(t testing.TB, n int, timeout time.Duration) ([]applied, []string) {
	t.Helper()
	var out []applied
	var ids []string
	for len(out) < n {
		m := c.expect(t, "applied", timeout)
		var a applied
		if err := json.Unmarshal([]byte(m.Data), &a); err != nil {
			t.Fatalf("%v: %s", err, m.Data)
		}
		out = append(out, a)
		ids = append(ids, m.ID)
	}
	return out, ids
}
