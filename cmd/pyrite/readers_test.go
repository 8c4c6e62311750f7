package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// progressV4Renamed renames newProgress to progress (with a default): BACKWARD accepts it
// (a v4 reader takes the default from v3 data), but a group decoding with v3 cannot read
// v4 data, which lacks newProgress, for which v3 has no default.
const progressV4Renamed = `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort","fields":[
	{"name":"oldProgress","type":"int"},{"name":"progress","type":"int","default":0},
	{"name":"delta","type":"int","default":0},{"name":"formatted","type":"string","default":""}]}`

// TestSchemaCheckRefusesWhatALiveReaderCannotRead: a group records (with `schema readers
// register`, as an outside service would) that it reads ProgressUpdated with v3;
// `schema check` then says v4 is compatible under BACKWARD yet UNREADABLE by that group,
// naming the group, the reader version and the field path, and exits 1. Without the
// reader, or with --readers=false, the same v4 passes.
func TestSchemaCheckRefusesWhatALiveReaderCannotRead(t *testing.T) {
	s := stacktest.Start(t)
	dir := schemaDir(t, map[string]string{"workeffort/ProgressUpdated.v4.avsc": progressV4Renamed})
	check := func() (int, string, string) {
		return runCLI(t, opsArgs(s, "schema", "check", "--dir", dir)...)
	}
	if code, stdout, stderr := check(); code != 0 {
		t.Fatalf("with no live reader: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr := runCLI(t, opsArgs(s, "schema", "readers", "register", "--group", "billing",
		"--type", "WorkEffort:ProgressUpdated", "--version", "3", "--instance", "billing-1")...)
	if code != 0 || !strings.Contains(stdout, "group billing reads WorkEffort:ProgressUpdated with pyrite.workeffort.ProgressUpdated version 3") {
		t.Fatalf("register: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, opsArgs(s, "schema", "readers")...)
	if code != 0 || !strings.Contains(stdout, "billing") || !strings.Contains(stdout, "billing-1") {
		t.Fatalf("readers: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, opsArgs(s, "schema", "readers", "--output", "json", "--subject", "pyrite.workeffort.ProgressUpdated")...)
	var listed []struct {
		Group   string `json:"group"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil || code != 0 || len(listed) != 1 || listed[0].Group != "billing" || listed[0].Version != 3 {
		t.Fatalf("readers --output json: exit %d %v\n%s", code, err, stdout)
	}

	code, stdout, stderr = check()
	t.Logf("pyrite schema check:\n%s", stdout)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"compatible    pyrite.workeffort.ProgressUpdated v4", // BACKWARD accepts it
		"UNREADABLE    pyrite.workeffort.ProgressUpdated v4",
		`group billing reads WorkEffort:ProgressUpdated with reader version 3: reader field "newProgress" has no default and is missing in writer`,
		"0 incompatible, 1 unreadable by a live reader",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code, stdout, _ := runCLI(t, opsArgs(s, "schema", "check", "--dir", dir, "--readers=false")...); code != 0 {
		t.Errorf("--readers=false: exit %d\n%s", code, stdout)
	}

	if code, stdout, stderr := runCLI(t, opsArgs(s, "schema", "readers", "remove", "--group", "billing", "--type", "WorkEffort:ProgressUpdated")...); code != 0 {
		t.Fatalf("remove: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := check(); code != 0 {
		t.Errorf("after remove: exit %d\n%s", code, stdout)
	}
}
