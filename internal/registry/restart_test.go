package registry

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRestartKeepsState builds state with every kind of write, restarts the
// registry on the same cluster and checks that every read answers the same
// and that new ids and versions continue where they left off.
func TestRestartKeepsState(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	setup := []step{
		{name: "v1", method: "POST", path: "/subjects/user/versions", body: sb(userV1), status: 200},
		{name: "doc", method: "POST", path: "/subjects/user/versions", body: sb(userV1Doc), status: 200},
		{name: "v2", method: "POST", path: "/subjects/user/versions", body: sb(userV2), status: 200},
		{name: "copy", method: "POST", path: "/subjects/user-copy/versions", body: sb(userV1), status: 200},
		{name: "addr", method: "POST", path: "/subjects/addr/versions", body: sb(address), status: 200},
		{name: "person", method: "POST", path: "/subjects/person/versions", body: sb(person, personRefs), status: 200},
		{name: "global level", method: "PUT", path: "/config", body: `{"compatibility":"FULL_TRANSITIVE"}`, status: 200},
		{name: "subject level", method: "PUT", path: "/config/user", body: `{"compatibility":"FORWARD"}`, status: 200},
		{name: "subject mode", method: "PUT", path: "/mode/user-copy", body: `{"mode":"READONLY"}`, status: 200},
		{name: "soft delete version", method: "DELETE", path: "/subjects/user/versions/1", status: 200},
		{name: "gone subject", method: "POST", path: "/subjects/gone/versions", body: sb(otherSchema), status: 200},
		{name: "soft delete subject", method: "DELETE", path: "/subjects/gone", status: 200},
		{name: "hard delete subject", method: "DELETE", path: "/subjects/gone?permanent=true", status: 200},
		{name: "soft only", method: "POST", path: "/subjects/soft/versions", body: sb(imported), status: 200},
		{name: "soft delete it", method: "DELETE", path: "/subjects/soft", status: 200},
		{name: "import mode", method: "PUT", path: "/mode/imp", body: `{"mode":"IMPORT"}`, status: 200},
		{name: "import", method: "POST", path: "/subjects/imp/versions", body: sb(importedV2, `"id":50`, `"version":3`), status: 200, contains: []string{`{"id":50,`}},
	}
	runSteps(t, tr, setup)

	reads := []string{
		"/subjects", "/subjects?deleted=true",
		"/subjects/user/versions", "/subjects/user/versions?deleted=true",
		"/subjects/user/versions/1?deleted=true", "/subjects/user/versions/2", "/subjects/user/versions/latest",
		"/subjects/user-copy/versions/1", "/subjects/person/versions/1", "/subjects/addr/versions/1/referencedby",
		"/subjects/gone/versions?deleted=true", "/subjects/soft/versions?deleted=true", "/subjects/imp/versions/3",
		"/schemas/ids/1", "/schemas/ids/2", "/schemas/ids/3", "/schemas/ids/4", "/schemas/ids/5", "/schemas/ids/6",
		"/schemas/ids/7", "/schemas/ids/50", "/schemas/ids/1/versions?deleted=true",
		"/config", "/config/user", "/config/user-copy", "/mode", "/mode/user-copy", "/mode/imp",
	}
	before := map[string]response{}
	for _, p := range reads {
		before[p] = tr.do(t, "GET", p, "")
	}
	tr.stop()

	tr2 := startRegistry(t, c)
	for _, p := range reads {
		t.Run("same after restart "+p, func(t *testing.T) {
			got := tr2.do(t, "GET", p, "")
			if got.status != before[p].status || got.body != before[p].body {
				t.Errorf("GET %s\nbefore %d %s\n after %d %s", p, before[p].status, before[p].body, got.status, got.body)
			}
		})
	}
	runSteps(t, tr2, []step{
		{name: "new id after the highest one", method: "POST", path: "/subjects/fresh/versions", body: sb(`"string"`), status: 200, contains: []string{`{"id":51,`}},
		{name: "next version after the soft-deleted ones", method: "POST", path: "/subjects/user/versions", body: sb(userV1, `"version":0`), status: 200, contains: []string{`{"id":1,`}},
		{name: "read-only survives", method: "POST", path: "/subjects/user-copy/versions", body: sb(userV2), status: 422, code: 42205},
		{name: "soft delete survives", method: "DELETE", path: "/subjects/soft", status: 404, code: 40404},
	})
	if got := tr2.do(t, "GET", "/subjects/user/versions", ""); got.body != `[2,3,4]` {
		t.Errorf("versions after re-registering v1: %s, want [2,3,4]", got.body)
	}
}

// TestStoreRecordFormat checks the records in the store topic are
// Confluent's, byte for byte.
func TestStoreRecordFormat(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	runSteps(t, tr, []step{
		{name: "register", method: "POST", path: "/subjects/s/versions", body: sb(`"string"`), status: 200},
		{name: "config", method: "PUT", path: "/config", body: `{"compatibility":"FULL"}`, status: 200},
		{name: "subject config", method: "PUT", path: "/config/s", body: `{"compatibility":"NONE"}`, status: 200},
		{name: "mode", method: "PUT", path: "/mode/s", body: `{"mode":"READWRITE"}`, status: 200},
		{name: "soft delete version", method: "DELETE", path: "/subjects/s/versions/1", status: 200},
		{name: "register again", method: "POST", path: "/subjects/s/versions", body: sb(`"int"`), status: 200},
		{name: "soft delete subject", method: "DELETE", path: "/subjects/s", status: 200},
		{name: "hard delete subject", method: "DELETE", path: "/subjects/s?permanent=true", status: 200},
	})
	want := []struct{ key, value string }{
		{`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"s","version":1,"id":1,"schema":"\"string\"","deleted":false}`},
		{`{"keytype":"CONFIG","magic":0}`, `{"compatibilityLevel":"FULL"}`},
		{`{"keytype":"CONFIG","subject":"s","magic":0}`, `{"compatibilityLevel":"NONE"}`},
		{`{"keytype":"MODE","subject":"s","magic":0}`, `{"mode":"READWRITE"}`},
		{`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"s","version":1,"id":1,"schema":"\"string\"","deleted":true}`},
		{`{"keytype":"SCHEMA","subject":"s","version":2,"magic":1}`, `{"subject":"s","version":2,"id":2,"schema":"\"int\"","deleted":false}`},
		{`{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}`, `{"subject":"s","version":2}`},
		{`{"keytype":"SCHEMA","subject":"s","version":2,"magic":1}`, ``},
		{`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, ``},
		{`{"keytype":"CONFIG","subject":"s","magic":0}`, ``},
		{`{"keytype":"MODE","subject":"s","magic":0}`, ``},
	}
	got := readTopic(t, c, DefaultTopic, len(want))
	for i, w := range want {
		if got[i].key != w.key || got[i].value != w.value {
			t.Errorf("record %d\n got %s => %s\nwant %s => %s", i, got[i].key, got[i].value, w.key, w.value)
		}
	}
}

type rawRecord struct{ key, value string }

// readTopic reads n committed data records from partition 0 of topic.
func readTopic(t *testing.T, c interface{ ListenAddrs() []string }, topic string, n int) []rawRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []rawRecord
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(out), n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, rawRecord{string(r.Key), string(r.Value)}) })
	}
	return out
}

// TestReadsConfluentRecords starts a registry on a topic written the way a
// Confluent registry writes it (schemaType and md5 present, NOOP and other
// key types, garbage) and checks what it serves.
func TestReadsConfluentRecords(t *testing.T) {
	c := newCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("confluent"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "confluent"); err != nil {
		t.Fatal(err)
	}
	recs := []struct{ key, value string }{
		{`{"keytype":"NOOP","magic":0}`, `null`},
		{`{"keytype":"SCHEMA","subject":"orders-value","version":1,"magic":1}`,
			`{"subject":"orders-value","version":1,"id":7,"md5":"q2VMwbCEWXLQOQM0jaq+hA==","schemaType":"AVRO","schema":"{\"type\":\"record\",\"name\":\"Order\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}","deleted":false}`},
		{`{"keytype":"CONTEXT","tenant":"default","context":".","magic":0}`, `{"tenant":"default","context":"."}`},
		{`{"keytype":"CONFIG","subject":null,"magic":0}`, `{"compatibilityLevel":"FORWARD","normalize":false}`},
		{`{"keytype":"MODE","magic":0}`, `{"subject":null,"mode":"READONLY"}`},
		{`not json`, `{}`},
		{`{"keytype":"SCHEMA","subject":"orders-value","version":2,"magic":1}`, `{"subject":"orders-value","version":2,"id":9,"schema":"\"string\"","deleted":false}`},
		{`{"keytype":"DELETE_SUBJECT","subject":"orders-value","magic":0}`, `{"subject":"orders-value","version":1}`},
	}
	var krecs []*kgo.Record
	for _, r := range recs {
		rec := &kgo.Record{Key: []byte(r.key), Partition: 0}
		if r.value != "null" {
			rec.Value = []byte(r.value)
		}
		krecs = append(krecs, rec)
	}
	if err := cl.ProduceSync(ctx, krecs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tr := startRegistry(t, c, WithTopic("confluent"))
	runSteps(t, tr, []step{
		{name: "live versions", method: "GET", path: "/subjects/orders-value/versions", status: 200, want: `[2]`},
		{name: "soft-deleted by DELETE_SUBJECT", method: "GET", path: "/subjects/orders-value/versions?deletedOnly=true", status: 200, want: `[1]`},
		{name: "schema by id", method: "GET", path: "/schemas/ids/7", status: 200,
			want: `{"guid":"ab654cc1-b084-5972-d039-03348daabe84","schema":"{\"type\":\"record\",\"name\":\"Order\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}"}`},
		{name: "the record's stored md5 is its guid", method: "GET", path: "/schemas/guids/ab654cc1-b084-5972-d039-03348daabe84", status: 200,
			contains: []string{`Order`}},
		{name: "global level", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"FORWARD"}`},
		{name: "global mode", method: "GET", path: "/mode", status: 200, want: `{"mode":"READONLY"}`},
		{name: "read-only mode applies", method: "POST", path: "/subjects/x/versions", body: sb(`"long"`), status: 422, code: 42205},
		{name: "writable again", method: "PUT", path: "/mode", body: `{"mode":"READWRITE"}`, status: 200},
		{name: "ids continue after Confluent's", method: "POST", path: "/subjects/x/versions", body: sb(`"long"`), status: 200, contains: []string{`{"id":10,`}},
	})
}
