package registry

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTwoWritersNeverShareAnID races two instances on one cluster: A
// computes its write (the next id is 1), then B registers a different
// schema (getting id 1) before A commits. A must not report success.
func TestTwoWritersNeverShareAnID(t *testing.T) {
	tests := []struct {
		name string
		// sameTxnID: B's start fences A (the default, one transactional id
		// per topic); otherwise only the apply-time conflict check stands
		// between A and a duplicate id.
		sameTxnID bool
	}{
		{name: "fenced by transactional id", sameTxnID: true},
		{name: "conflict detected on apply", sameTxnID: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			a := startRegistry(t, c, WithTransactionalID("writer-a"))
			planned, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			a.beforeCommit = func() {
				once.Do(func() {
					close(planned)
					<-release
				})
			}
			bID := "writer-b"
			if tt.sameTxnID {
				bID = "writer-a"
			}
			xSchema := `{"type":"record","name":"X","fields":[{"name":"x","type":"int"}]}`
			ySchema := `{"type":"record","name":"Y","fields":[{"name":"y","type":"string"}]}`

			var aResp response
			done := make(chan struct{})
			go func() {
				defer close(done)
				aResp = a.do(t, "POST", "/subjects/sa/versions", schemaBody(t, xSchema))
			}()
			<-planned
			b := startRegistry(t, c, WithTransactionalID(bID))
			bResp := b.do(t, "POST", "/subjects/sb/versions", schemaBody(t, ySchema))
			close(release)
			<-done

			if bResp.status != 200 || !strings.HasPrefix(bResp.body, `{"id":1,`) {
				t.Fatalf("B: got %d %s, want 200 {\"id\":1}", bResp.status, bResp.body)
			}
			if aResp.status != 500 || aResp.errorCode() != codeStoreError {
				t.Fatalf("A: got %d %s, want 500 with error_code 50001", aResp.status, aResp.body)
			}
			if got := a.Fenced(); got != tt.sameTxnID {
				t.Errorf("A.Fenced() = %v, want %v", got, tt.sameTxnID)
			}
			// Both instances agree that id 1 is Y, and nothing holds X.
			for name, inst := range map[string]*testRegistry{"A": a, "B": b} {
				var got schemaByIDResponse
				r := inst.do(t, "GET", "/schemas/ids/1", "")
				r.json(t, &got)
				if got.Schema != ySchema {
					t.Errorf("%s: id 1 is %s, want Y", name, got.Schema)
				}
				if r := inst.do(t, "GET", "/subjects/sa/versions", ""); r.errorCode() != codeSubjectNotFound {
					t.Errorf("%s: subject sa: %d %s, want 40401", name, r.status, r.body)
				}
			}
			// A restart sees the same thing.
			a.stop()
			b.stop()
			c2 := startRegistry(t, c)
			var got schemaByIDResponse
			c2.do(t, "GET", "/schemas/ids/1", "").json(t, &got)
			if got.Schema != ySchema {
				t.Errorf("after restart: id 1 is %s, want Y", got.Schema)
			}
		})
	}
}

// TestConcurrentWritersAgree registers distinct schemas concurrently on two
// instances that do not fence each other and checks every success: no id is
// reported for two different schemas, and both instances end up holding
// every reported (subject, id) pair.
func TestConcurrentWritersAgree(t *testing.T) {
	c := newCluster(t)
	a := startRegistry(t, c, WithTransactionalID("concurrent-a"))
	b := startRegistry(t, c, WithTransactionalID("concurrent-b"))
	const perInstance = 12
	type result struct {
		subject, schema string
		resp            response
	}
	results := make(chan result, 2*perInstance)
	var wg sync.WaitGroup
	for i := range 2 * perInstance {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		subject := fmt.Sprintf("s%d", i)
		schema := fmt.Sprintf(`{"type":"fixed","name":"F%d","size":%d}`, i, i+1)
		wg.Go(func() {
			results <- result{subject, schema, inst.do(t, "POST", "/subjects/"+subject+"/versions", sb(schema))}
		})
	}
	wg.Wait()
	close(results)
	byID := map[int]string{}
	var ok, failed int
	for r := range results {
		if r.resp.status != 200 {
			if r.resp.errorCode() != codeStoreError {
				t.Errorf("%s: %d %s, want 200 or 50001", r.subject, r.resp.status, r.resp.body)
			}
			failed++
			continue
		}
		ok++
		var reg registerResponse
		r.resp.json(t, &reg)
		if prev, dup := byID[reg.ID]; dup && prev != r.schema {
			t.Errorf("id %d reported for %s and %s", reg.ID, prev, r.schema)
		}
		byID[reg.ID] = r.schema
		// The instance that wrote has applied the record before answering; the other serves
		// reads from memory as it follows the store topic, so it holds the pair soon after.
		for name, inst := range map[string]*testRegistry{"A": a, "B": b} {
			var got versionResponse
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				got = versionResponse{}
				if resp := inst.do(t, "GET", "/subjects/"+r.subject+"/versions/1", ""); resp.status == 200 {
					resp.json(t, &got)
				}
				if got.ID == reg.ID && got.Schema == r.schema || time.Now().After(deadline) {
					break
				}
			}
			if got.ID != reg.ID || got.Schema != r.schema {
				t.Errorf("%s: %s/1 = id %d %s, want id %d %s", name, r.subject, got.ID, got.Schema, reg.ID, r.schema)
			}
		}
	}
	t.Logf("%d registered, %d refused with 50001", ok, failed)
	if ok == 0 {
		t.Error("nothing registered")
	}
}

// TestKafkaUnavailable: with the cluster gone a write is answered 50001
// within the write timeout, and reads are still served from memory.
func TestKafkaUnavailable(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c, WithWriteTimeout(time.Second))
	runSteps(t, tr, []step{{name: "register", method: "POST", path: "/subjects/s/versions", body: sb(`"string"`), status: 200}})
	c.Close()
	runSteps(t, tr, []step{
		{name: "write fails", method: "POST", path: "/subjects/s/versions", body: sb(`"int"`), status: 500, code: 50001},
		{name: "read still served", method: "GET", path: "/subjects/s/versions/1", status: 200},
	})
}
