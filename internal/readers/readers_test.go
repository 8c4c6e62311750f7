package readers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/readers"
	"github.com/pyrite-dev/pyrite/internal/registry"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

const subject = "pyrite.workeffort.ProgressUpdated"

// v4 renames newProgress to progress (with a default). BACKWARD accepts it: a v4 reader
// fills progress from its default in v3 data. A group still decoding with v3 cannot read
// v4 data: v3's newProgress has no default and v4 data lacks it.
const v4 = `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort","fields":[
	{"name":"oldProgress","type":"int"},
	{"name":"progress","type":"int","default":0},
	{"name":"delta","type":"int","default":0},
	{"name":"formatted","type":"string","default":""}]}`

func cluster(t *testing.T) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topo := stacktest.Topology(t, topology.Dev)
	if _, err := topo.Ensure(t.Context(), kadm.NewClient(cl)); err != nil {
		t.Fatal(err)
	}
	return c, brokers
}

func producer(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// localVersion returns schemas/' text of subject version v.
func localVersion(t *testing.T, v int) string {
	t.Helper()
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Subject == subject && f.Version == v {
			return f.Text
		}
	}
	t.Fatalf("no %s v%d in schemas/", subject, v)
	return ""
}

func post(t *testing.T, url, schema string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"schema": schema})
	resp, err := http.Post(url, "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRegistryRefusesWhatALiveReaderCannotRead: a v4 that BACKWARD accepts (the registry's
// own compatibility endpoint says so) is refused by the registry in live-reader mode
// because group work-efforts decodes with v3, naming the group, the reader version and the
// field path; once the reader is removed, the same v4 registers.
func TestRegistryRefusesWhatALiveReaderCannotRead(t *testing.T) {
	_, brokers := cluster(t)
	ctx, cancel := context.WithCancel(t.Context())
	set := readers.NewSet()
	watched := make(chan error, 1)
	go func() {
		watched <- set.Watch(ctx, func(err error) { t.Errorf("skipped: %v", err) }, kgo.SeedBrokers(brokers...))
	}()
	t.Cleanup(func() { cancel(); <-watched })

	reg, err := registry.New(t.Context(), brokers, registry.WithLiveReaders(set.LiveReaders))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	versions := srv.URL + "/subjects/" + subject + "/versions"
	for v := 1; v <= 3; v++ {
		if code, body := post(t, versions, localVersion(t, v)); code != http.StatusOK {
			t.Fatalf("register v%d: %d %s", v, code, body)
		}
	}
	cl := producer(t, brokers)
	if err := readers.Publish(t.Context(), cl, readers.Reader{Group: "work-efforts", Type: "WorkEffort:ProgressUpdated",
		Subject: subject, Version: 3, Schema: localVersion(t, 3), Instance: "test", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reader to reach the set", func() bool { return len(set.Of(subject)) == 1 })

	code, body := post(t, srv.URL+"/compatibility/subjects/"+subject+"/versions/latest?verbose=true", v4)
	if code != http.StatusOK || !strings.Contains(body, `"is_compatible":true`) {
		t.Fatalf("BACKWARD should accept v4: %d %s", code, body)
	}
	code, body = post(t, versions, v4)
	if code != http.StatusConflict {
		t.Fatalf("register v4 with a live v3 reader: %d %s, want 409", code, body)
	}
	for _, want := range []string{"group work-efforts", "reader version 3", "newProgress"} {
		if !strings.Contains(body, want) {
			t.Errorf("refusal %s does not name %s", body, want)
		}
	}

	if err := readers.Remove(t.Context(), cl, "work-efforts", "WorkEffort:ProgressUpdated"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tombstone to reach the set", func() bool { return len(set.Of(subject)) == 0 })
	if code, body := post(t, versions, v4); code != http.StatusOK {
		t.Fatalf("register v4 with no live reader: %d %s", code, body)
	}
}

// TestLoad: Load sees every acknowledged record, the latest per group and type, and
// tombstones remove.
func TestLoad(t *testing.T) {
	_, brokers := cluster(t)
	cl := producer(t, brokers)
	mk := func(group string, v int) readers.Reader {
		return readers.Reader{Group: group, Type: "WorkEffort:ProgressUpdated", Subject: subject, Version: v,
			Schema: localVersion(t, v), Instance: "i", Time: time.Now().UTC().Truncate(time.Millisecond)}
	}
	if err := readers.Publish(t.Context(), cl, mk("a", 1), mk("b", 2), mk("a", 3), mk("c", 1)); err != nil {
		t.Fatal(err)
	}
	if err := readers.Remove(t.Context(), cl, "c", "WorkEffort:ProgressUpdated"); err != nil {
		t.Fatal(err)
	}
	set, err := readers.Load(t.Context(), kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	got := set.All()
	if len(got) != 2 || got[0].Group != "a" || got[0].Version != 3 || got[1].Group != "b" || got[1].Version != 2 {
		t.Fatalf("loaded %+v, want a v3 and b v2", got)
	}
	if err := readers.Publish(t.Context(), cl, readers.Reader{Group: "x"}); err == nil {
		t.Error("Publish accepted a reader with no type, subject, version or schema")
	}
}

func TestCheck(t *testing.T) {
	rs := []readers.Reader{
		{Group: "old", Type: "WorkEffort:ProgressUpdated", Subject: subject, Version: 1, Schema: localVersion(t, 1)},
		{Group: "new", Type: "WorkEffort:ProgressUpdated", Subject: subject, Version: 3, Schema: localVersion(t, 3)},
	}
	problems, err := readers.Check(rs, localVersion(t, 3))
	if err != nil || len(problems) != 0 {
		t.Fatalf("v3 data for v1 and v3 readers: %v %v", problems, err)
	}
	problems, err = readers.Check(rs, v4)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 {
		t.Fatalf("v4 data: %v, want one problem per reader", problems)
	}
	for i, g := range []string{"old", "new"} {
		if s := problems[i].String(); !strings.Contains(s, "group "+g) || !strings.Contains(s, `"newProgress"`) {
			t.Errorf("problem %d: %s", i, s)
		}
	}
	if _, err := readers.Check(rs, "{"); err == nil {
		t.Error("Check accepted a writer that does not parse")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
