package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// check runs every check with the load paused and returns the row.
func (l *load) check(t *testing.T, d *dev, round int) Row {
	t.Helper()
	l.gate.Lock()
	defer l.gate.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	sentinels := l.postSentinels(t, ctx, adm, round)
	l.mu.Lock()
	accepted := make(map[string]bool, len(l.ok))
	for id := range l.ok {
		accepted[id] = true
	}
	completed := make(map[string]bool, len(l.completed))
	for id := range l.completed {
		completed[id] = true
	}
	l.mu.Unlock()

	seen := readUntil(t, ctx, d.kafka, eventsTopic, sentinels)
	tally := Count(accepted, seen)
	if tally.Lost+tally.Duplicated > 0 {
		t.Logf("round %d: lost %v, duplicated %v", round, tally.LostIDs, tally.DupIDs)
		l.mu.Lock()
		for _, id := range tally.LostIDs {
			t.Logf("lost %s was accepted: %s", id, l.how[id])
		}
		l.mu.Unlock()
		ids := slices.Clone(tally.LostIDs)
		for _, d := range tally.DupIDs {
			id, _, _ := strings.Cut(d, "@")
			ids = append(ids, id)
		}
		whereIs(t, ctx, adm, d.kafka, ids)
	}
	row := Row{Events: len(accepted), Lost: tally.Lost, Duplicated: tally.Duplicated, OutOfOrder: tally.OutOfOrder}
	if tally.Duplicated > 0 {
		// A duplicate already on raw is the broker's (an outside producer's retry written
		// twice), not the pipeline's: the events topic then holds one event per raw record.
		rawCopies := map[string]int{}
		for _, s := range readUntil(t, ctx, d.kafka, rawTopic, sentinels) {
			rawCopies[s.ID]++
		}
		for _, dup := range tally.DupIDs {
			if id, _, _ := strings.Cut(dup, "@"); rawCopies[id] > 1 {
				t.Logf("round %d: %s is on raw %d times (the broker's duplicate, not the pipeline's)", round, id, rawCopies[id])
				row.Duplicated--
				row.RawDuplicated++
			}
		}
	}
	row.Projection = l.checkProjection(t, ctx, d, seen)
	lastData := map[int32]int64{}
	for _, s := range seen {
		lastData[s.Partition] = max(lastData[s.Partition], s.Offset)
	}
	row.Effects = checkEffects(t, ctx, adm, d.kafka, completed, lastData)
	row.Stuck = stuckInRetry(t, ctx, adm)
	return row
}

// postSentinels writes, through ingest, one Created event to every
// partition of the events topic; once a reader has seen them all, it has
// seen everything accepted before. It returns their ids.
func (l *load) postSentinels(t *testing.T, ctx context.Context, adm *kadm.Client, round int) map[string]bool {
	t.Helper()
	td, err := adm.ListTopics(ctx, eventsTopic)
	if err != nil || td.Error() != nil {
		t.Fatalf("describe %s: %v %v", eventsTopic, err, td.Error())
	}
	parts := len(td[eventsTopic].Partitions)
	covered := map[int]bool{}
	ids := map[string]bool{}
	for j := 0; len(covered) < parts; j++ {
		agg := fmt.Sprintf("sentinel-%d-%d", round, j)
		id := EventID(agg, 0)
		body, _ := json.Marshal(map[string]any{"id": id, "type": "WorkEffort:Created", "aggregateId": agg,
			"data": map[string]any{"title": "sentinel", "createdAt": time.Now().UnixMilli()}})
		for {
			resp, err := l.http.Post("http://"+l.dev.ingest+"/v1/events", "application/json", bytes.NewReader(body))
			if err == nil {
				var ans struct{ Partition int }
				json.NewDecoder(resp.Body).Decode(&ans)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					covered[ans.Partition] = true
					ids[id] = true
					l.mu.Lock() // the direct producer's goroutine accepts events meanwhile
					l.ok[id] = true
					l.mu.Unlock()
					break
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("sentinel %s not accepted: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return ids
}

// readUntil reads topic from the start, read_committed, until every id in
// until has been read, and returns every record with a ce_id.
func readUntil(t *testing.T, ctx context.Context, broker, topic string, until map[string]bool) []Seen {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A sentinel lost (a read_committed reader skipping committed records)
	// must show in the table as lost rather than hang the matrix.
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var seen []Seen
	left := len(until)
	for left > 0 {
		fs := c.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Logf("read %s: %d of %d sentinels not read after %d records", topic, left, len(until), len(seen))
			return seen
		}
		fs.EachRecord(func(r *kgo.Record) {
			id := header(r, "ce_id")
			seen = append(seen, Seen{ID: id, Partition: r.Partition, Offset: r.Offset})
			if until[id] {
				left--
			}
		})
	}
	// Records were appended as fetched; order each partition by offset
	// (fetches of different partitions interleave, one partition's never).
	return seen
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// checkProjection compares the work-efforts read model of every ingest
// aggregate with the fold of what the topic holds: its version is the
// number of its events, its progress the last ProgressUpdated's, its status
// completed when the last event is Completed. It returns the number of
// aggregates that differ.
func (l *load) checkProjection(t *testing.T, ctx context.Context, d *dev, seen []Seen) int {
	t.Helper()
	count := map[string]int{}
	last := map[string]int{}
	dups := map[string]bool{}
	for _, s := range seen {
		agg, seq, ok := ParseEventID(s.ID)
		if !ok || strings.HasPrefix(agg, "sentinel") || dups[s.ID] {
			continue
		}
		dups[s.ID] = true
		count[agg]++
		last[agg] = max(last[agg], seq)
	}
	bad := 0
	for n := range l.sz.aggregates {
		agg := aggregate(n)
		if direct(n) || count[agg] == 0 {
			continue
		}
		want := count[agg]
		var st struct {
			Version  int    `json:"version"`
			Progress int    `json:"progress"`
			Status   string `json:"status"`
		}
		code := 0
		for ctx.Err() == nil {
			code = getJSON(ctx, fmt.Sprintf("http://%s/v1/work-efforts/%s?minVersion=%d", d.projector, agg, want), &st)
			if code == http.StatusOK {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		typ, data := l.eventOf(n, last[agg])
		ok := code == http.StatusOK && st.Version == want
		switch typ {
		case "WorkEffort:Completed":
			ok = ok && st.Status == "completed"
		case "WorkEffort:ProgressUpdated":
			ok = ok && st.Progress == data["newProgress"].(int)
		}
		if !ok {
			bad++
			t.Logf("projection of %s: %d %+v; the topic folds to version %d after %s", agg, code, st, want, typ)
		}
	}
	return bad
}

func getJSON(ctx context.Context, url string, v any) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// checkEffects waits for the integration reactor to catch up with the
// events topic and counts its integration events per Completed event: it
// returns how many Completed events have none or more than one.
func checkEffects(t *testing.T, ctx context.Context, adm *kadm.Client, broker string, completed map[string]bool, lastData map[int32]int64) int {
	t.Helper()
	waitCommitted(t, ctx, adm, "integration", eventsTopic, lastData)
	ends, err := adm.ListEndOffsets(ctx, integrationTopic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", integrationTopic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	c, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(integrationTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	per := map[string]int{}
	for len(want) > 0 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: partitions %v not read to their end", integrationTopic, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			per[header(r, "ce_causationid")]++
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	bad := 0
	for id := range completed {
		if per[id] != 1 {
			bad++
			t.Logf("Completed event %s has %d integration events, want 1", id, per[id])
		}
	}
	return bad
}

// waitCommitted waits (bounded) until group has committed, on every
// partition of topic, past the last data record read there (the log's end
// may be a transaction marker no consumer commits past).
func waitCommitted(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string, lastData map[int32]int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		behind := 0
		for p, last := range lastData {
			if o, ok := offs.Lookup(topic, p); !ok || o.At <= last {
				behind++
			}
		}
		if err == nil && behind == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Logf("group %s: %d partitions of %s not committed past their last record (error %v)", group, behind, topic, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLag waits (bounded) until group has no lag on the topics match
// accepts; it returns the lag left.
func waitLag(t *testing.T, ctx context.Context, adm *kadm.Client, group string, match func(string) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var total int64
		lags, err := adm.Lag(ctx, group)
		if err == nil {
			lags.Each(func(l kadm.DescribedGroupLag) {
				for topic, ps := range l.Lag {
					if !match(topic) {
						continue
					}
					for _, p := range ps {
						if p.Lag > 0 {
							total += p.Lag
						}
					}
				}
			})
		}
		if err == nil && total == 0 {
			return 0
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Logf("group %s: lag %d, error %v", group, total, err)
			return total
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stuckInRetry returns the records left unconsumed in any retry topic
// after waiting for the groups to drain them.
func stuckInRetry(t *testing.T, ctx context.Context, adm *kadm.Client) int {
	t.Helper()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("list groups: %v", err)
	}
	var stuck int64
	for _, g := range groups.Groups() {
		stuck += waitLag(t, ctx, adm, g, func(topic string) bool { return strings.HasSuffix(topic, ".retry") })
	}
	return int(stuck)
}

// whereIs logs, for events the checks found lost, every copy on the raw and events topics
// read_uncommitted (control records kept), with its producer: whether the record was never
// written, written and aborted, or written and hidden from read_committed readers.
func whereIs(t *testing.T, ctx context.Context, adm *kadm.Client, broker string, ids []string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, topic := range []string{rawTopic, eventsTopic} {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Logf("where: %v", err)
			return
		}
		until := map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 {
				until[o.Partition] = o.Offset - 1
			}
		})
		c, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.KeepControlRecords(),
			kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		type producer struct {
			part int32
			id   int64
		}
		open := map[producer][]string{} // the wanted records of each producer's open transaction
		for len(until) > 0 && rctx.Err() == nil {
			c.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
				if last, ok := until[r.Partition]; ok && r.Offset >= last {
					delete(until, r.Partition)
				}
				pr := producer{r.Partition, r.ProducerID}
				if r.Attrs.IsControl() {
					if ids := open[pr]; len(ids) > 0 {
						end := "ABORT"
						if len(r.Key) >= 4 && r.Key[3] == 1 {
							end = "COMMIT"
						}
						t.Logf("where: %v on %s[%d]: their transaction ended by %s at offset %d (epoch %d)", ids, topic, r.Partition, end, r.Offset, r.ProducerEpoch)
						delete(open, pr)
					}
					return
				}
				if id := header(r, "ce_id"); want[id] {
					t.Logf("where: %s on %s[%d]@%d producer %d epoch %d transactional %v raw offset %s",
						id, topic, r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch, r.Attrs.IsTransactional(), header(r, "pyrite-upcast-raw-offset"))
					if r.Attrs.IsTransactional() {
						open[pr] = append(open[pr], fmt.Sprintf("%s@%d", id, r.Offset))
					}
				}
			})
		}
		for pr, ids := range open {
			t.Logf("where: %v on %s[%d]: their transaction has no end marker yet", ids, topic, pr.part)
		}
		cancel()
		c.Close()
	}
}
