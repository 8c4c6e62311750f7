package board_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/board"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

func registryDo(t *testing.T, method, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
}

func TestSchemaDiff(t *testing.T) {
	s := stacktest.Start(t)
	srv := httptest.NewServer(board.New(board.Options{Admin: s.Admin, Registry: s.RegistryURL}).Handler())
	defer srv.Close()
	get := func(t *testing.T, path string, v any) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(v)
		return resp.StatusCode
	}

	t.Run("subjects and versions", func(t *testing.T) {
		var out struct{ Subjects []board.Subject }
		if code := get(t, "/v1/board/schemas", &out); code != 200 {
			t.Fatalf("status %d", code)
		}
		for _, sub := range out.Subjects {
			if sub.Subject == "pyrite.workeffort.ProgressUpdated" {
				if len(sub.Versions) != 3 {
					t.Errorf("ProgressUpdated versions %v, want 3", sub.Versions)
				}
				return
			}
		}
		t.Errorf("no ProgressUpdated among %d subjects", len(out.Subjects))
	})

	t.Run("ProgressUpdated v1 to v3 adds two fields, compatible", func(t *testing.T) {
		var d board.Diff
		if code := get(t, "/v1/board/schemas/diff?subject=pyrite.workeffort.ProgressUpdated&from=1&to=3", &d); code != 200 {
			t.Fatalf("status %d", code)
		}
		changes := map[string]string{}
		for _, f := range d.Fields {
			changes[f.Name] = f.Change
		}
		want := map[string]string{"oldProgress": "same", "newProgress": "same", "delta": "added", "formatted": "added"}
		for k, v := range want {
			if changes[k] != v {
				t.Errorf("%s: %q, want %q (all: %v)", k, changes[k], v, changes)
			}
		}
		if !d.Compatible || d.Level != "BACKWARD" {
			t.Errorf("verdict %v under %s: %v", d.Compatible, d.Level, d.Messages)
		}
	})

	t.Run("an incompatible pair is named", func(t *testing.T) {
		// Versions registered while the subject was NONE, judged once it is BACKWARD again.
		subj := s.RegistryURL + "/subjects/board.Test"
		registryDo(t, http.MethodPut, s.RegistryURL+"/config/board.Test", `{"compatibility":"NONE"}`)
		registryDo(t, http.MethodPost, subj+"/versions", `{"schema":"{\"type\":\"record\",\"name\":\"Test\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}`)
		registryDo(t, http.MethodPost, subj+"/versions", `{"schema":"{\"type\":\"record\",\"name\":\"Test\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"long\"}]}"}`)
		registryDo(t, http.MethodPut, s.RegistryURL+"/config/board.Test", `{"compatibility":"BACKWARD"}`)
		var d board.Diff
		if code := get(t, "/v1/board/schemas/diff?subject=board.Test&from=1&to=2", &d); code != 200 {
			t.Fatalf("status %d", code)
		}
		if d.Compatible || len(d.Messages) == 0 {
			t.Fatalf("int -> string and a new field without default judged compatible: %+v", d)
		}
		got := map[string]string{}
		for _, f := range d.Fields {
			got[f.Name] = f.Change
		}
		if got["a"] != "changed" || got["b"] != "added" {
			t.Errorf("fields %v, want a changed and b added", got)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, q := range []string{"", "?subject=x&from=0&to=1", "?subject=x&from=1&to=y"} {
			var p map[string]any
			if code := get(t, "/v1/board/schemas/diff"+q, &p); code != 400 {
				t.Errorf("%q: status %d", q, code)
			}
		}
	})

	t.Run("the page is served", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
	})
}

func TestPipeline(t *testing.T) {
	s := stacktest.Start(t)
	s.Produce(t, &kgo.Record{Topic: "pyrite.upcaster.dlq", Key: []byte("k"), Value: []byte("not avro")})
	b := board.New(board.Options{Admin: s.Admin, Registry: s.RegistryURL, Stages: []board.Stage{
		{Name: "upcaster", Group: "pyrite-upcaster", DLQTopic: "pyrite.upcaster.dlq"},
		{Name: "integration", Group: "integration", DLQTopic: "pyrite.integration.dlq"},
	}})
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/board/pipeline")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p board.Pipeline
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	if len(p.Stages) != 2 {
		t.Fatalf("stages %+v", p.Stages)
	}
	if up := p.Stages[0]; up.DLQ != 1 || up.Lag != -1 || up.State != "not running" {
		t.Errorf("upcaster %+v: want 1 dead letter, no lag, not running", up)
	}
	if in := p.Stages[1]; in.DLQ != 0 {
		t.Errorf("integration %+v: want no dead letters", in)
	}
}
