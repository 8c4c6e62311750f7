package interop

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

type idResult struct {
	ID int `json:"id"`
}

// versionIDs asks the registry itself which versions the subject has and the id of each.
func (h *harness) versionIDs(t *testing.T, subject string) map[int]int {
	t.Helper()
	var versions []int
	if code := h.do(t, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions", nil, &versions); code != http.StatusOK {
		t.Fatalf("GET /subjects/%s/versions: status %d", subject, code)
	}
	ids := make(map[int]int, len(versions))
	for _, v := range versions {
		var md struct {
			ID      int `json:"id"`
			Version int `json:"version"`
		}
		path := fmt.Sprintf("/subjects/%s/versions/%d", url.PathEscape(subject), v)
		if code := h.do(t, http.MethodGet, path, nil, &md); code != http.StatusOK || md.Version != v {
			t.Fatalf("GET %s: status %d, version %d", path, code, md.Version)
		}
		ids[v] = md.ID
	}
	return ids
}

// schemaByID is the registry's own answer to GET /schemas/ids/{id}.
func (h *harness) schemaByID(t *testing.T, id int) avroShape {
	t.Helper()
	var body struct {
		Schema string `json:"schema"`
	}
	if code := h.do(t, http.MethodGet, fmt.Sprintf("/schemas/ids/%d", id), nil, &body); code != http.StatusOK {
		t.Fatalf("GET /schemas/ids/%d: status %d", id, code)
	}
	return shapeOf(t, body.Schema)
}

// TestRegistryThroughNodeClients registers, looks up and reads ProgressUpdated through each Node
// client and checks every answer against what the registry serves over plain HTTP; then it checks
// that an incompatible version is refused with 409, the registry's message reaches the client,
// and nothing is stored. The clients run one after another on the same subject, so the second
// also proves that registering an existing schema is idempotent (same ids, no new versions).
func TestRegistryThroughNodeClients(t *testing.T) {
	h := newHarness(t)
	v1, v2, v3 := progressSchema(t, 1), progressSchema(t, 2), progressSchema(t, 3)
	bad := incompatibleSchema(t, v3)

	// The registry's own refusal, asked directly, to compare the clients' errors with.
	var refusal struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}

	clients := []struct {
		name          string
		script        string
		lookupVersion bool // whether `lookup` reports the version
		statusKept    bool // whether a not-found lookup error keeps the HTTP status
	}{
		{name: "confluentinc-schemaregistry", script: "confluent.mjs", lookupVersion: true, statusKept: true},
		// This library rewraps a 404 from lookup in its own error type without the status.
		{name: "kafkajs-confluent-schema-registry", script: "kafkajs.mjs"},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			var r1, r2 idResult
			h.mustNode(t, c.script, &r1, "register", progressSubject, v1.path)
			h.mustNode(t, c.script, &r2, "register", progressSubject, v2.path)
			if r1.ID == r2.ID {
				t.Fatalf("v1 and v2 registered with the same id %d", r1.ID)
			}
			ids := h.versionIDs(t, progressSubject)
			if want := map[int]int{1: r1.ID, 2: r2.ID}; !maps.Equal(ids, want) {
				t.Fatalf("registry has versions->ids %v, client got %v", ids, want)
			}
			for id, f := range map[int]schemaFile{r1.ID: v1, r2.ID: v2} {
				if got, want := h.schemaByID(t, id), shapeOf(t, f.text); !shapesEqual(got, want) {
					t.Errorf("GET /schemas/ids/%d = %+v, want %+v (%s)", id, got, want, f.path)
				}
			}

			t.Run("lookup", func(t *testing.T) {
				for v, f := range map[int]schemaFile{1: v1, 2: v2} {
					var got struct {
						ID      int  `json:"id"`
						Version *int `json:"version"`
					}
					h.mustNode(t, c.script, &got, "lookup", progressSubject, f.path)
					if got.ID != ids[v] {
						t.Errorf("lookup v%d: id %d, want %d", v, got.ID, ids[v])
					}
					if c.lookupVersion && (got.Version == nil || *got.Version != v) {
						t.Errorf("lookup v%d: version %v, want %d", v, deref(got.Version), v)
					}
				}
				// A schema the subject does not have is not found, with the registry's message.
				var notFound struct {
					ErrorCode int    `json:"error_code"`
					Message   string `json:"message"`
				}
				body := map[string]string{"schema": v3.text}
				if code := h.do(t, http.MethodPost, "/subjects/"+progressSubject, body, &notFound); code != http.StatusNotFound || notFound.Message == "" {
					t.Fatalf("registry answered a lookup of unregistered v3 with status %d, body %+v; want 404 with a message", code, notFound)
				}
				cerr := h.node(t, c.script, &idResult{}, "lookup", progressSubject, v3.path)
				switch {
				case cerr == nil:
					t.Error("lookup of unregistered v3 succeeded")
				case c.statusKept && (cerr.Status == nil || *cerr.Status != http.StatusNotFound):
					t.Errorf("lookup of unregistered v3: %v, want status 404", cerr)
				case !strings.Contains(cerr.Message, notFound.Message):
					t.Errorf("lookup of unregistered v3: client error %q does not carry the registry's message %q", cerr.Message, notFound.Message)
				}
			})

			t.Run("get by id", func(t *testing.T) {
				var got struct {
					Schema string `json:"schema"`
				}
				h.mustNode(t, c.script, &got, "get", fmt.Sprint(r2.ID))
				if gs, want := shapeOf(t, got.Schema), shapeOf(t, v2.text); !shapesEqual(gs, want) {
					t.Errorf("get %d = %+v, want %+v", r2.ID, gs, want)
				}
			})

			t.Run("latest", func(t *testing.T) {
				var got idResult
				h.mustNode(t, c.script, &got, "latest", progressSubject)
				if got.ID != r2.ID {
					t.Errorf("latest id %d, want %d (v2)", got.ID, r2.ID)
				}
			})

			t.Run("incompatible version refused", func(t *testing.T) {
				if refusal.Message == "" {
					body := map[string]string{"schema": bad.text}
					code := h.do(t, http.MethodPost, "/subjects/"+progressSubject+"/versions", body, &refusal)
					if code != http.StatusConflict || refusal.ErrorCode != 40901 || refusal.Message == "" {
						t.Fatalf("registry answered an incompatible schema with status %d, body %+v; want 409 with error_code 40901 (Confluent 8.0.4 and later) and a message", code, refusal)
					}
				}
				cerr := h.node(t, c.script, &idResult{}, "register", progressSubject, bad.path)
				if cerr == nil {
					t.Fatal("registering an incompatible schema succeeded")
				}
				if cerr.Status == nil || *cerr.Status != http.StatusConflict {
					t.Errorf("status %v, want 409 (%v)", deref(cerr.Status), cerr)
				}
				if cerr.ErrorCode != nil && *cerr.ErrorCode != 40901 {
					t.Errorf("error code %d, want 40901 (%v)", *cerr.ErrorCode, cerr)
				}
				if !strings.Contains(cerr.Message, refusal.Message) {
					t.Errorf("client error %q does not carry the registry's message %q", cerr.Message, refusal.Message)
				}
				if got := h.versionIDs(t, progressSubject); !maps.Equal(got, ids) {
					t.Errorf("after the refusal the subject has %v, want %v unchanged", got, ids)
				}
			})
		})
	}

	t.Run("confluentinc-schemaregistry compatibility endpoint", func(t *testing.T) {
		cases := []struct {
			name string
			file schemaFile
			want bool
		}{
			{name: "v3 adds a field with a default", file: v3, want: true},
			{name: "field without a default", file: bad, want: false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var got struct {
					Compatible bool `json:"compatible"`
				}
				h.mustNode(t, "confluent.mjs", &got, "compat", progressSubject, tc.file.path)
				if got.Compatible != tc.want {
					t.Errorf("compatible = %v, want %v", got.Compatible, tc.want)
				}
			})
		}
	})
}

func shapesEqual(a, b avroShape) bool {
	return a.Name == b.Name && slices.Equal(a.Fields, b.Fields)
}
