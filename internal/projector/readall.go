package projector

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// ReadAll serves GET /v1/events?from=<cursor>&types=&limit=: the seed's readAll, every
// aggregate's events from the events topics in one stable order, paged by an opaque cursor.
//
// The cursor encodes the next offset of every partition of every events topic, so a page
// never skips or repeats an event, whatever arrives meanwhile. Within a partition events
// come in offset order (per-aggregate order); across partitions the page is a merge by
// record timestamp (ties by topic, then partition), which is the same for the same data.
// Only committed records count (read_committed, up to each partition's last stable offset).
// types keeps the events whose type matches one of its comma-separated patterns
// (WorkEffort:Created, WorkEffort:*, *:Completed); the cursor moves past the others too.
// An empty page means the reader is caught up; nextCursor is always given, to poll on.
// A record that does not decode is answered in place with its position and the error.
type ReadAll struct {
	brokers []string
	topics  []string
	dec     bus.Decoder
	opts    []kgo.Opt
	timeout time.Duration
}

// NewReadAll returns the handler for topics (the events topics), decoding with dec and
// reading through clients made with brokers and opts.
func NewReadAll(brokers, topics []string, dec bus.Decoder, opts ...kgo.Opt) *ReadAll {
	return &ReadAll{brokers: brokers, topics: slices.Sorted(slices.Values(topics)), dec: dec, opts: opts, timeout: 10 * time.Second}
}

// ReadAll's page size: the default and the most one page holds.
const (
	DefaultReadAllLimit = 100
	MaxReadAllLimit     = 1000
)

// readAllEvent is one event in a readAll page.
type readAllEvent struct {
	ID               string         `json:"id,omitempty"`
	Type             string         `json:"type,omitempty"`
	AggregateID      string         `json:"aggregateId,omitempty"`
	AggregateVersion int64          `json:"aggregateVersion,omitempty"`
	Time             *time.Time     `json:"time,omitempty"`
	SchemaVersion    int            `json:"schemaVersion,omitempty"`
	Data             map[string]any `json:"data,omitempty"`
	Metadata         map[string]any `json:"metadata,omitempty"`
	Topic            string         `json:"topic"`
	Partition        int32          `json:"partition"`
	Offset           int64          `json:"offset"`
	Error            string         `json:"error,omitempty"`
}

type readAllPage struct {
	Events     []readAllEvent `json:"events"`
	NextCursor string         `json:"nextCursor"`
}

// cursor is the next offset per topic and partition.
type cursor map[string]map[int32]int64

func (c cursor) get(t string, p int32) int64 { return c[t][p] }

func (c cursor) set(t string, p int32, o int64) {
	if c[t] == nil {
		c[t] = map[int32]int64{}
	}
	c[t][p] = o
}

// encode is base64url of a JSON object {"<topic>": {"<partition>": offset}}.
func (c cursor) encode() string {
	b, _ := json.Marshal(c) // maps of strings and numbers: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor reads an encoded cursor; "" is the start of every partition.
func parseCursor(s string, topics []string) (cursor, error) {
	c := cursor{}
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 1<<20 {
		return nil, errors.New("not a cursor this API gave")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, errors.New("not a cursor this API gave")
	}
	for t, ps := range c {
		if !slices.Contains(topics, t) {
			return nil, fmt.Errorf("the cursor names %q, which is not an events topic", t)
		}
		for p, o := range ps {
			if p < 0 || o < 0 {
				return nil, errors.New("the cursor holds a negative position")
			}
		}
	}
	return c, nil
}

func (ra *ReadAll) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err := parseCursor(q.Get("from"), ra.topics)
	if err != nil {
		WriteProblem(w, http.StatusBadRequest, "Bad cursor", err.Error(), "from")
		return
	}
	limit := DefaultReadAllLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxReadAllLimit {
			WriteProblem(w, http.StatusBadRequest, "Bad limit", fmt.Sprintf("limit must be an integer from 1 to %d", MaxReadAllLimit), "limit")
			return
		}
		limit = n
	}
	var types []string
	for _, t := range strings.Split(q.Get("types"), ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !bus.Match(t, t) {
			WriteProblem(w, http.StatusBadRequest, "Bad types", fmt.Sprintf("%q is not an event type or pattern", t), "types")
			return
		}
		types = append(types, t)
	}
	ctx, cancel := context.WithTimeout(r.Context(), ra.timeout)
	defer cancel()
	page, err := ra.read(ctx, from, types, limit)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, http.StatusServiceUnavailable, "Kafka unavailable", err.Error(), "")
		return
	}
	WriteJSON(w, http.StatusOK, page)
}

// read takes up to limit matching events after from.
func (ra *ReadAll) read(ctx context.Context, from cursor, types []string, limit int) (*readAllPage, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(ra.brokers...)}, ra.opts...)...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, ra.topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, ra.topics...)
	if err == nil {
		err = ends.Error()
	}
	cl.Close()
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	next, end := cursor{}, cursor{}
	parts := map[string]map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) {
		pos := max(from.get(o.Topic, o.Partition), o.Offset)
		e, _ := ends.Lookup(o.Topic, o.Partition)
		next.set(o.Topic, o.Partition, pos)
		end.set(o.Topic, o.Partition, e.Offset)
		if pos < e.Offset {
			if parts[o.Topic] == nil {
				parts[o.Topic] = map[int32]kgo.Offset{}
			}
			parts[o.Topic][o.Partition] = kgo.NewOffset().At(pos)
		}
	})
	page := &readAllPage{Events: []readAllEvent{}}
	if len(parts) > 0 {
		if err := ra.merge(ctx, parts, next, end, types, limit, page); err != nil {
			return nil, err
		}
	}
	page.NextCursor = next.encode()
	return page, nil
}

// merge reads the partitions in parts and appends to page, in the readAll order, up to
// limit matching events, moving next past every record it takes or skips.
func (ra *ReadAll) merge(ctx context.Context, parts map[string]map[int32]kgo.Offset, next, end cursor, types []string, limit int, page *readAllPage) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(ra.brokers...),
		kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxWait(100 * time.Millisecond)}, ra.opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	type tp struct {
		topic string
		part  int32
	}
	buf := map[tp][]*kgo.Record{}
	open := map[tp]bool{} // partitions not yet read to their end
	for t, ps := range parts {
		for p := range ps {
			open[tp{t, p}] = true
		}
	}
	// done reports whether k has nothing left before its end, buffered or not.
	done := func(k tp) bool { return len(buf[k]) == 0 && next.get(k.topic, k.part) >= end.get(k.topic, k.part) }
	for len(page.Events) < limit {
		// Every partition not done needs a head to merge on.
		waiting := false
		for k := range open {
			if done(k) {
				delete(open, k)
			} else if len(buf[k]) == 0 {
				waiting = true
			}
		}
		if len(open) == 0 {
			return nil
		}
		if waiting {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("reading the events topics: %w", err)
			}
			var errs []error
			fs.EachError(func(t string, p int32, err error) { errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", t, p, err)) })
			if err := errors.Join(errs...); err != nil {
				return err
			}
			fs.EachRecord(func(rec *kgo.Record) {
				k := tp{rec.Topic, rec.Partition}
				if rec.Offset < end.get(k.topic, k.part) {
					buf[k] = append(buf[k], rec)
				}
			})
			continue
		}
		// Take the head with the earliest timestamp (ties: topic, partition).
		var best tp
		var head *kgo.Record
		for k := range open {
			h := buf[k][0]
			if head == nil || cmp.Or(h.Timestamp.Compare(head.Timestamp), strings.Compare(k.topic, best.topic), cmp.Compare(k.part, best.part)) < 0 {
				best, head = k, h
			}
		}
		buf[best] = buf[best][1:]
		next.set(best.topic, best.part, head.Offset+1)
		if head.Attrs.IsControl() {
			continue
		}
		if ev, ok := ra.event(ctx, head, types); ok {
			page.Events = append(page.Events, ev)
		}
	}
	return nil
}

// event decodes rec; ok is false when its type is filtered out.
func (ra *ReadAll) event(ctx context.Context, rec *kgo.Record, types []string) (readAllEvent, bool) {
	out := readAllEvent{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	ev, err := ra.dec.Decode(ctx, rec)
	if err != nil {
		out.Error = err.Error()
		out.AggregateID = string(rec.Key)
		return out, len(types) == 0
	}
	if len(types) > 0 && !slices.ContainsFunc(types, func(p string) bool { return bus.Match(p, ev.Type) }) {
		return out, false
	}
	out.ID, out.Type, out.AggregateID, out.AggregateVersion = ev.ID, ev.Type, ev.AggregateID, ev.AggregateVersion
	out.SchemaVersion, out.Data = ev.SchemaVersion, ev.Data
	if !ev.Time.IsZero() {
		t := ev.Time.UTC()
		out.Time = &t
	}
	md := map[string]any{}
	for k, v := range map[string]string{"correlationId": ev.CorrelationID, "causationId": ev.CausationID, "userId": ev.UserID} {
		if v != "" {
			md[k] = v
		}
	}
	if len(md) > 0 {
		out.Metadata = md
	}
	return out, true
}
