package registry

import (
	"net/http"
	"strings"
	"testing"
)

// TestLiveReaders: with WithLiveReaders, a version that BACKWARD accepts but a live reader
// cannot read is refused with 409 naming the group, its reader version and the field path;
// the same schema registered again, and force=true, are not refused; without readers for
// the subject it registers.
func TestLiveReaders(t *testing.T) {
	const (
		v1 = `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`
		// v2 renames a to b (with a default): BACKWARD accepts it, a v1 reader cannot read it.
		v2 = `{"type":"record","name":"R","fields":[{"name":"b","type":"int","default":0}]}`
	)
	readers := map[string][]LiveReader{"s": {{Group: "billing", Version: 1, Schema: v1}}}
	tr := startRegistry(t, newCluster(t), WithLiveReaders(func(subject string) []LiveReader { return readers[subject] }))
	for _, subject := range []string{"s", "other"} {
		if r := tr.do(t, "POST", "/subjects/"+subject+"/versions", schemaBody(t, v1)); r.status != http.StatusOK {
			t.Fatalf("register v1 in %s: %d %s", subject, r.status, r.body)
		}
	}
	if r := tr.do(t, "POST", "/subjects/s/versions", schemaBody(t, v1)); r.status != http.StatusOK {
		t.Errorf("v1 again: %d %s", r.status, r.body)
	}
	r := tr.do(t, "POST", "/subjects/s/versions", schemaBody(t, v2))
	if r.status != http.StatusConflict || r.errorCode() != codeIncompatibleSchema {
		t.Fatalf("v2 with a live v1 reader: %d %s", r.status, r.body)
	}
	for _, want := range []string{"group billing", "reader version 1", `field \"a\" has no default`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("refusal %s lacks %s", r.body, want)
		}
	}
	if r := tr.do(t, "POST", "/subjects/other/versions", schemaBody(t, v2)); r.status != http.StatusOK {
		t.Errorf("v2 where no reader is recorded: %d %s", r.status, r.body)
	}
	if r := tr.do(t, "POST", "/subjects/s/versions?force=true", schemaBody(t, v2)); r.status != http.StatusOK {
		t.Errorf("v2 with force=true: %d %s", r.status, r.body)
	}
}
