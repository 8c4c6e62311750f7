package schemas_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pyrite-dev/pyrite/internal/compat"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

const recordTmpl = `{"type":"record","name":"%N","namespace":"pyrite.%S","doc":"d","fields":[{"name":"a","type":"int","doc":"d"}%F]}`

func rec(seg, name, extraFields string) string {
	r := strings.NewReplacer("%N", name, "%S", seg, "%F", extraFields)
	return r.Replace(recordTmpl)
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		fs       fstest.MapFS
		want     []string // subject.vN in order
		wantErrs []error
	}{
		{
			name: "sorted by subject then version",
			fs: fstest.MapFS{
				"workeffort/B.v2.avsc": {Data: []byte(rec("workeffort", "B", ""))},
				"workeffort/B.v1.avsc": {Data: []byte(rec("workeffort", "B", ""))},
				"system/A.v1.avsc":     {Data: []byte(rec("system", "A", ""))},
				"README.md":            {Data: []byte("ignored")},
			},
			want: []string{"pyrite.system.A.v1", "pyrite.workeffort.B.v1", "pyrite.workeffort.B.v2"},
		},
		{
			name:     "unknown segment",
			fs:       fstest.MapFS{"billing/A.v1.avsc": {Data: []byte(rec("billing", "A", ""))}},
			wantErrs: []error{schemas.ErrBadPath},
		},
		{
			name:     "no version in name",
			fs:       fstest.MapFS{"system/A.avsc": {Data: []byte(rec("system", "A", ""))}},
			wantErrs: []error{schemas.ErrBadPath},
		},
		{
			name:     "version zero",
			fs:       fstest.MapFS{"system/A.v0.avsc": {Data: []byte(rec("system", "A", ""))}},
			wantErrs: []error{schemas.ErrBadPath},
		},
		{
			name:     "too deep",
			fs:       fstest.MapFS{"system/x/A.v1.avsc": {Data: []byte(rec("system", "A", ""))}},
			wantErrs: []error{schemas.ErrBadPath},
		},
		{
			name:     "record name differs from file name",
			fs:       fstest.MapFS{"system/A.v1.avsc": {Data: []byte(rec("system", "B", ""))}},
			wantErrs: []error{schemas.ErrNameMismatch},
		},
		{
			name:     "namespace differs from directory",
			fs:       fstest.MapFS{"system/A.v1.avsc": {Data: []byte(rec("workeffort", "A", ""))}},
			wantErrs: []error{schemas.ErrNameMismatch},
		},
		{
			name:     "not json",
			fs:       fstest.MapFS{"system/A.v1.avsc": {Data: []byte(`{"type":`)}},
			wantErrs: []error{schemas.ErrInvalidSchema},
		},
		{
			name:     "not a record",
			fs:       fstest.MapFS{"system/A.v1.avsc": {Data: []byte(`"string"`)}},
			wantErrs: []error{schemas.ErrInvalidSchema},
		},
		{
			name: "version gap",
			fs: fstest.MapFS{
				"system/A.v1.avsc": {Data: []byte(rec("system", "A", ""))},
				"system/A.v3.avsc": {Data: []byte(rec("system", "A", ""))},
			},
			wantErrs: []error{schemas.ErrVersionGap},
		},
		{
			name:     "not starting at one",
			fs:       fstest.MapFS{"system/A.v2.avsc": {Data: []byte(rec("system", "A", ""))}},
			wantErrs: []error{schemas.ErrVersionGap},
		},
		{
			name: "every problem reported",
			fs: fstest.MapFS{
				"system/A.v2.avsc":  {Data: []byte(rec("system", "A", ""))},
				"system/B.v1.avsc":  {Data: []byte(rec("system", "C", ""))},
				"nowhere/D.v1.avsc": {Data: []byte(rec("nowhere", "D", ""))},
			},
			wantErrs: []error{schemas.ErrVersionGap, schemas.ErrNameMismatch, schemas.ErrBadPath},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := schemas.Load(tt.fs)
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatalf("no error; loaded %d files", len(files))
				}
				for _, want := range tt.wantErrs {
					if !errors.Is(err, want) {
						t.Errorf("err = %v; does not wrap %v", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Subject+".v"+strconv.Itoa(f.Version))
				if f.Text != string(tt.fs[f.Path].Data) {
					t.Errorf("%s: Text is not the file's content", f.Path)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("loaded %v, want %v", got, tt.want)
			}
		})
	}
}

// wantEvents is every event type the design names, with its number of versions.
var wantEvents = map[string]int{
	"WorkEffort:Created": 1, "WorkEffort:Started": 1, "WorkEffort:ProgressUpdated": 3,
	"WorkEffort:Completed": 1, "WorkEffort:NeedsManualSync": 1, "WorkEffort:GitHubIssueCreated": 1,
	"WorkEffort:GitHubIssueCreationFailed": 1, "WorkEffort:GitHubIssueClosed": 1,
	"Deployment:RunTests": 1, "Deployment:RunBuild": 1, "Deployment:RunDeploy": 1,
	"Deployment:TestsPassed": 1, "Deployment:TestsFailed": 1, "Deployment:BuildComplete": 1,
	"Deployment:BuildFailed": 1, "Deployment:Deployed": 1, "Deployment:DeployFailed": 1,
	"Deployment:StepTimedOut": 1, "Deployment:ProcessFailed": 1,
	"work-effort.completed.v1": 1,
	"System:FileChanged":       1, "System:CacheInvalidated": 1, "System:WebSocketConnected": 1,
}

func TestAllEventsHaveSchemas(t *testing.T) {
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	topo := stacktest.Topology(t, topology.Dev)
	versions := map[string]int{} // subject -> newest version in schemas/
	for _, f := range files {
		versions[f.Subject] = max(versions[f.Subject], f.Version)
	}
	wantSubjects := map[string]bool{}
	for et, n := range wantEvents {
		subject, err := topo.Subject(et)
		if err != nil {
			t.Errorf("%s: %v", et, err)
			continue
		}
		wantSubjects[subject] = true
		if versions[subject] != n {
			t.Errorf("%s (%s): %d versions, want %d", et, subject, versions[subject], n)
		}
	}
	for subject := range versions {
		if !wantSubjects[subject] {
			t.Errorf("%s has a schema but no event type of the design maps to it (add it to wantEvents)", subject)
		}
		if _, err := topo.RawTopic(mustType(t, topo, subject)); err != nil {
			t.Errorf("%s: not routable: %v", subject, err)
		}
	}
}

type fieldJSON struct {
	Name    string          `json:"name"`
	Type    json.RawMessage `json:"type"`
	Doc     string          `json:"doc"`
	Default json.RawMessage `json:"default"`
}

// House rules for event schemas: docs everywhere, optional fields as ["null", T] with a null
// default, timestamps as timestamp-millis longs.
func TestSchemaConventions(t *testing.T) {
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f.Path, func(t *testing.T) {
			var r struct {
				Doc    string      `json:"doc"`
				Fields []fieldJSON `json:"fields"`
			}
			if err := json.Unmarshal([]byte(f.Text), &r); err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(r.Doc) == "" {
				t.Error("record has no doc")
			}
			for _, fl := range r.Fields {
				if strings.TrimSpace(fl.Doc) == "" {
					t.Errorf("field %s has no doc", fl.Name)
				}
				var union []json.RawMessage
				if json.Unmarshal(fl.Type, &union) == nil {
					if len(union) != 2 || string(union[0]) != `"null"` || string(fl.Default) != "null" {
						t.Errorf("field %s: a union must be [\"null\", T] with \"default\": null", fl.Name)
					}
					fl.Type = union[1]
				}
				isTS := string(fl.Type) == `{"type":"long","logicalType":"timestamp-millis"}` ||
					strings.Contains(strings.Join(strings.Fields(string(fl.Type)), ""), `"logicalType":"timestamp-millis"`)
				if (strings.HasSuffix(fl.Name, "At") || fl.Name == "modified") && !isTS {
					t.Errorf("field %s looks like a timestamp but is %s", fl.Name, fl.Type)
				}
			}
		})
	}
}

// checkHistory returns every way a subject's versions break BACKWARD_TRANSITIVE: each version
// must read data written with every earlier one, since the upcaster reads any registered
// version as the newest.
func checkHistory(t *testing.T, files []schemas.File) []string {
	t.Helper()
	var problems []string
	for i, f := range files {
		var older []compat.Schema
		for _, g := range files[:i] {
			if g.Subject == f.Subject {
				older = append(older, compat.Schema{Text: g.Text})
			}
		}
		msgs, err := compat.Check(compat.BackwardTransitive, compat.Schema{Text: f.Text}, older)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		for _, m := range msgs {
			problems = append(problems, f.Path+": "+m)
		}
	}
	return problems
}

func TestVersionsAreBackwardCompatible(t *testing.T) {
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkHistory(t, files) {
		t.Error(p)
	}
}

// The check above can fail: a history that breaks compatibility is caught.
func TestCheckHistoryCatchesBreaks(t *testing.T) {
	tests := []struct {
		name string
		v2   string
		ok   bool
	}{
		{name: "field with default added", v2: rec("system", "A", `,{"name":"b","type":"int","default":0,"doc":"d"}`), ok: true},
		{name: "field without default added", v2: rec("system", "A", `,{"name":"b","type":"int","doc":"d"}`)},
		{name: "type narrowed", v2: strings.Replace(rec("system", "A", ""), `"type":"int"`, `"type":"boolean"`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := schemas.Load(fstest.MapFS{
				"system/A.v1.avsc": {Data: []byte(rec("system", "A", ""))},
				"system/A.v2.avsc": {Data: []byte(tt.v2)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if problems := checkHistory(t, files); (len(problems) == 0) != tt.ok {
				t.Errorf("problems = %q, want ok=%v", problems, tt.ok)
			}
		})
	}
}

// mustType maps a domain or system subject back to its event type; an
// integration subject maps to the integration type of wantEvents.
func mustType(t *testing.T, topo *topology.Topology, subject string) string {
	t.Helper()
	if et, err := topo.EventType(subject); err == nil {
		return et
	}
	for et := range wantEvents {
		if s, err := topo.Subject(et); err == nil && s == subject {
			return et
		}
	}
	t.Fatalf("%s maps to no event type", subject)
	return ""
}
