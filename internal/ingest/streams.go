package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// HeaderReplayed is set (to "true") on a 201 answered from the dedupe window: the events were
// written by an earlier request with the same ids, nothing was written now.
const HeaderReplayed = "Idempotent-Replayed"

// routeEvents finds the one partition evs are on (route) and, when another instance owns it,
// forwards the request (body raw) there: forwarded reports that the answer was written.
// stored reports that the events go through the store here; events outside the store's
// topics (system, integration) take the plain path. A problem answers the request: 503
// while the partition moves or its owner is unreachable, 422 for a batch spanning
// partitions. Events of an unknown type are left to prepare, which names every bad field.
func (s *Service) routeEvents(w http.ResponseWriter, r *http.Request, raw []byte, evs []Event) (route eventstore.Route, stored, forwarded bool, p *Problem) {
	var spans []FieldIssue
	plain := 0
	var lastType, topic string // a batch is mostly of one type: its topic is looked up once
	for i, ev := range evs {
		if i == 0 || ev.Type != lastType {
			t, err := s.router.RawTopic(ev.Type)
			if err != nil {
				return route, true, false, nil
			}
			lastType, topic = ev.Type, t
		}
		var rt eventstore.Route
		var err error
		if i == 0 {
			rt, err = s.awaitRoute(r, topic, ev.AggregateID)
		} else { // only where it is matters: the first event's route is the batch's
			rt.Topic = topic
			rt.Partition, err = s.store.PartitionOf(topic, []byte(ev.AggregateID))
		}
		switch {
		case errors.Is(err, eventstore.ErrUnknownTopic):
			plain++
			rt = eventstore.Route{Topic: topic, Partition: -1}
		case err != nil:
			return route, true, false, storeProblem(err, "")
		}
		if i == 0 {
			route = rt
			continue
		}
		if rt.Topic != route.Topic || rt.Partition != route.Partition {
			spans = append(spans, FieldIssue{Field: fieldPrefix(i) + "aggregateId",
				Message: fmt.Sprintf("is on %s[%d], events[0] on %s[%d]", rt.Topic, rt.Partition, route.Topic, route.Partition)})
		}
	}
	switch {
	case plain == len(evs):
		return route, false, false, nil
	case plain > 0 || len(spans) > 0:
		return route, true, false, problem(http.StatusUnprocessableEntity, "batch-spans-partitions", "Batch spans partitions",
			"a batch of aggregate events is one transaction of one partition's writer: keep it to one aggregate (or to aggregates on one partition), without system or integration events; nothing was written",
			spans...)
	}
	forwarded, p = s.forwardIfRemote(w, r, raw, route)
	return route, true, forwarded, p
}

// awaitRoute returns the route of key on topic once it is settled (this instance owns the
// partition and is ready, or another instance owns it and r was not forwarded here), waiting
// up to OwnerWait while the group has not assigned it yet, a rebalance moves it, or this
// instance rebuilds it; after that the caller answers 503 from the unsettled route.
func (s *Service) awaitRoute(r *http.Request, topic, key string) (eventstore.Route, error) {
	deadline := time.Now().Add(s.cfg.OwnerWait)
	for {
		rt, err := s.store.Route(topic, []byte(key))
		settled := err == nil && (rt.Ready ||
			(!rt.Local && rt.Owner != "" && rt.Owner != s.store.Self() && !eventstore.Forwarded(r)))
		if settled || errors.Is(err, eventstore.ErrUnknownTopic) || !time.Now().Before(deadline) {
			return rt, err
		}
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-r.Context().Done():
			t.Stop()
			return rt, err
		case <-t.C:
		}
	}
}

// forwardIfRemote forwards r to the owner of route unless this instance owns it.
func (s *Service) forwardIfRemote(w http.ResponseWriter, r *http.Request, raw []byte, route eventstore.Route) (bool, *Problem) {
	switch {
	case route.Ready:
		return false, nil
	case route.Local:
		return false, notReady(route, "this instance is fencing the previous writer and rebuilding the partition's index")
	case eventstore.Forwarded(r):
		return false, notReady(route, "the request was forwarded here but this instance does not own the partition (ownership is moving)")
	case route.Owner == "" || route.Owner == s.store.Self():
		return false, notReady(route, "the partition has no owner ready (a rebalance is in progress)")
	}
	if err := s.store.Forward(w, r, raw, route.Owner); err != nil {
		return false, unavailable(fmt.Sprintf("the owner of %s[%d] did not answer (for an append the outcome is unknown: retry with the same ids): %v",
			route.Topic, route.Partition, err))
	}
	return true, nil
}

func notReady(route eventstore.Route, why string) *Problem {
	return unavailable(fmt.Sprintf("%s[%d]: %s", route.Topic, route.Partition, why))
}

// appendEvents appends the prepared records through the store and fills in results. done
// reports that the store no longer refers to recs (see storeDone), so that their memory may
// go to a later request once the answer is written.
func (s *Service) appendEvents(w http.ResponseWriter, ctx context.Context, routeName string, evs []Event, recs []*kgo.Record, results []Result) (_ []Result, done bool, _ *Problem) {
	pendBuf := pendingPool.Get().(*[]eventstore.Pending)
	pend := slices.Grow((*pendBuf)[:0], len(evs))[:len(evs)]
	for i, ev := range evs {
		exp := int64(-1)
		if ev.ExpectedVersion != nil {
			exp = *ev.ExpectedVersion
		}
		pend[i] = eventstore.Pending{Record: recs[i], ID: results[i].ID, Type: ev.Type, Expected: exp, NewID: ev.ID == ""}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	out, err := s.store.Append(ctx, pend)
	s.latency.WithLabelValues(routeName).Observe(time.Since(start).Seconds())
	if err == nil || storeDone(err) { // else the partition's writer may still hold pend
		clear(pend)
		*pendBuf = pend[:0]
		pendingPool.Put(pendBuf)
	}
	if err != nil {
		at := -1
		if len(evs) > 1 {
			at = 0
		}
		return nil, storeDone(err), storeProblem(err, fieldPrefix(at))
	}
	replayed := false
	for i, a := range out {
		if a.Duplicate {
			replayed = true
			results[i] = Result{ID: a.ID, Type: a.Type, AggregateID: a.AggregateID, Topic: a.Topic, SchemaID: a.SchemaID}
		}
		results[i].Partition, results[i].Offset, results[i].Version = a.Partition, a.Offset, a.Version
	}
	if replayed {
		w.Header().Set(HeaderReplayed, "true")
		// An append is a replay as a whole (the store answers Duplicate for all of its
		// events or none), so nothing was written now; count any event that was, alone.
		for i, a := range out {
			if !a.Duplicate {
				s.countEvents(evs[i : i+1])
			}
		}
		return results, true, nil
	}
	s.countEvents(evs)
	return results, true, nil
}

var pendingPool = sync.Pool{New: func() any { return new([]eventstore.Pending) }}

// storeDone reports whether the store is done with an append's records after Append
// answered err: the append was refused before it was queued (it spans partitions) or decided
// by the partition's writer (a version or id conflict), which answers only once its
// transaction ended and it let go of the records. After other errors (the caller gave up,
// the store closed, the transaction's outcome is unknown) the writer or the Kafka client may
// still hold them: their memory is left to the garbage collector.
func storeDone(err error) bool {
	var ce *eventstore.ConflictError
	var ie *eventstore.IDConflictError
	return errors.As(err, &ce) || errors.As(err, &ie) || errors.Is(err, eventstore.ErrSpansPartitions)
}

// storeProblem answers an event store error. prefix is the field prefix of a batch's first
// event ("" for a single event); conflicts name the event at fault.
func storeProblem(err error, prefix string) *Problem {
	var ce *eventstore.ConflictError
	var ie *eventstore.IDConflictError
	field := func(i int, name string) string {
		if prefix == "" {
			return name
		}
		return fieldPrefix(i) + name
	}
	switch {
	case errors.As(err, &ce):
		p := problem(http.StatusConflict, "version-conflict", "Version conflict",
			fmt.Sprintf("%s is at version %d, not %d; nothing was written", ce.AggregateID, ce.Current, ce.Expected),
			FieldIssue{Field: field(ce.Index, "expectedVersion"), Message: fmt.Sprintf("is %d but the stream is at version %d", ce.Expected, ce.Current)})
		cur := ce.Current
		p.AggregateID, p.CurrentVersion = ce.AggregateID, &cur
		return p
	case errors.As(err, &ie):
		return problem(http.StatusConflict, "id-conflict", "Event id conflict",
			"the event id cannot be deduplicated; nothing was written",
			FieldIssue{Field: field(ie.Index, "id"), Message: ie.Reason})
	case errors.Is(err, eventstore.ErrSpansPartitions):
		return problem(http.StatusUnprocessableEntity, "batch-spans-partitions", "Batch spans partitions", err.Error())
	case errors.Is(err, eventstore.ErrUnavailable):
		return unavailable("the transaction did not commit, or its outcome is unknown: retry with the same ids: " + err.Error())
	default: // not owner, not ready, no assignment, closed
		return unavailable(err.Error())
	}
}

// streamTarget reads the aggregate id and ?aggregateType of a stream request and finds the
// raw topic; it forwards the request to the owner when that is another instance.
func (s *Service) streamTarget(w http.ResponseWriter, r *http.Request) (id string, agg topology.Aggregate, forwarded bool, p *Problem) {
	id = r.PathValue("aggregateId")
	// An aggregate id alone does not say which topic its stream is on: without
	// ?aggregateType= it is the first declared aggregate's (the module list's first,
	// WorkEffort in Pyrite's own list).
	name := r.URL.Query().Get("aggregateType")
	if aggs := s.router.Aggregates(); name == "" && len(aggs) > 0 {
		name = aggs[0].Name
	}
	agg, err := s.router.Aggregate(name)
	if err != nil {
		return "", agg, false, problem(http.StatusNotFound, "unknown-aggregate-type", "Unknown aggregate type",
			fmt.Sprintf("%q is not a declared aggregate", name), FieldIssue{Field: "aggregateType", Message: err.Error()})
	}
	route, err := s.awaitRoute(r, agg.RawTopic(), id)
	if err != nil {
		return "", agg, false, storeProblem(err, "")
	}
	forwarded, p = s.forwardIfRemote(w, r, nil, route)
	return id, agg, forwarded, p
}

// StreamEvent is one event of GET /v1/streams/{aggregateId}: at the newest schema version of
// its type (schemaId, schemaVersion), upcast on read from the version it was written with
// (writtenSchemaId).
type StreamEvent struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Version         int64           `json:"version"`
	Time            time.Time       `json:"time"`
	Topic           string          `json:"topic"`
	Partition       int32           `json:"partition"`
	Offset          int64           `json:"offset"`
	SchemaID        int             `json:"schemaId"`
	SchemaVersion   int             `json:"schemaVersion"`
	WrittenSchemaID int             `json:"writtenSchemaId"`
	Data            json.RawMessage `json:"data"`
	Metadata        Metadata        `json:"metadata"`
}

// StreamAnswer is the body of GET /v1/streams/{aggregateId}.
type StreamAnswer struct {
	AggregateID   string        `json:"aggregateId"`
	AggregateType string        `json:"aggregateType"`
	Version       int64         `json:"version"`
	FromVersion   int64         `json:"fromVersion"`
	Events        []StreamEvent `json:"events"`
}

func (s *Service) getStream(w http.ResponseWriter, r *http.Request) *Problem {
	from := int64(1)
	if v := r.URL.Query().Get("fromVersion"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return problem(http.StatusBadRequest, "malformed", "Malformed request", "fromVersion must be a positive integer",
				FieldIssue{Field: "fromVersion", Message: "must be a positive integer"})
		}
		from = n
	}
	id, agg, forwarded, p := s.streamTarget(w, r)
	if forwarded || p != nil {
		return p
	}
	st, p := s.read(r.Context(), agg, id, from)
	if p != nil {
		return p
	}
	out := StreamAnswer{AggregateID: id, AggregateType: agg.Name, Version: st.Version, FromVersion: from, Events: make([]StreamEvent, len(st.Events))}
	for i, ev := range st.Events {
		data, err := codec.ToJSON(ev.Schema, ev.Data)
		if err != nil {
			return problem(http.StatusInternalServerError, "decode-failed", "Event cannot be shown as JSON",
				fmt.Sprintf("%s version %d: %v", id, ev.Version, err))
		}
		out.Events[i] = StreamEvent{ID: ev.ID, Type: ev.Type, Version: ev.Version, Time: ev.Time.UTC(), Topic: ev.Topic,
			Partition: ev.Partition, Offset: ev.Offset, SchemaID: ev.Schema.ID, SchemaVersion: ev.Schema.Version,
			WrittenSchemaID: ev.WrittenSchemaID, Data: data,
			Metadata: Metadata{CorrelationID: ev.CorrelationID, CausationID: ev.CausationID, UserID: ev.UserID}}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) getVersion(w http.ResponseWriter, r *http.Request) *Problem {
	id, agg, forwarded, p := s.streamTarget(w, r)
	if forwarded || p != nil {
		return p
	}
	v, err := s.store.Version(agg.RawTopic(), id)
	if err != nil {
		return storeProblem(err, "")
	}
	writeJSON(w, http.StatusOK, map[string]any{"aggregateId": id, "aggregateType": agg.Name, "version": v})
	return nil
}

func (s *Service) getState(w http.ResponseWriter, r *http.Request) *Problem {
	id, agg, forwarded, p := s.streamTarget(w, r)
	if forwarded || p != nil {
		return p
	}
	fold, ok := s.cfg.Folds[agg.Name]
	if !ok {
		return problem(http.StatusNotFound, "no-fold", "No fold for this aggregate type",
			fmt.Sprintf("no domain module folds %s streams", agg.Name),
			FieldIssue{Field: "aggregateType", Message: "has no fold"})
	}
	st, p := s.read(r.Context(), agg, id, 1)
	if p != nil {
		return p
	}
	if st.Version == 0 {
		return problem(http.StatusNotFound, "not-found", "Not found", fmt.Sprintf("%s %q has no events", agg.Name, id))
	}
	state, err := fold(st)
	if err != nil {
		return problem(http.StatusInternalServerError, "fold-failed", "The stream does not fold", err.Error())
	}
	writeJSON(w, http.StatusOK, state)
	return nil
}

// read reads a stream, answering 503 while the partition moves or the registry is away.
func (s *Service) read(ctx context.Context, agg topology.Aggregate, id string, from int64) (eventstore.Stream, *Problem) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	st, err := s.store.Read(ctx, agg.RawTopic(), id, from)
	switch {
	case err == nil:
		return st, nil
	case eventstore.Transient(err) || errors.Is(err, eventstore.ErrClosed) || upcast.Transient(err):
		return st, unavailable(err.Error())
	default:
		return st, problem(http.StatusInternalServerError, "read-failed", "The stream cannot be read", err.Error())
	}
}
