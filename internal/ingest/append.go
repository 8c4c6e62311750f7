package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
)

// postAppend serves POST /v1/eventstore/append: events already encoded (Confluent-framed
// Avro) with their CloudEvents headers, as Pyrite's own writers (sagas, process managers,
// through eventstore.Client) hand them over. The body is eventstore.AppendRequest; every
// event needs ce_id and ce_type headers. The events are appended through the event store as
// one transaction of one partition, with their expected versions: 201 with
// {"events": [Result...]} (each with its version), Idempotent-Replayed: true when every
// ce_id was written before (nothing written now), 409 on a version or id conflict, 422 for
// an unknown type, a type without a stream or a value that is not a registered schema of
// its type. Token scopes apply as on POST /v1/events.
func (s *Service) postAppend(w http.ResponseWriter, r *http.Request) *Problem {
	raw, p := readBody(w, r, s.cfg.MaxBatchBody, new(bytes.Buffer)) // may be forwarded: not pooled
	if p != nil {
		return p
	}
	var req eventstore.AppendRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return problem(http.StatusBadRequest, "malformed", "Malformed request", "the body is not an append request: "+err.Error())
	}
	evs, p := s.appendRequestEvents(req)
	if p != nil {
		return p
	}
	for i, ae := range req.Events {
		evs[i].Metadata.UserID = ae.Headers["ce_userid"]
	}
	if p := authorize(r, evs); p != nil {
		return p
	}
	_, stored, forwarded, p := s.routeEvents(w, r, raw, evs)
	switch {
	case forwarded || p != nil:
		return p
	case !stored:
		return problem(http.StatusUnprocessableEntity, "no-stream", "Not an aggregate stream",
			"only aggregate events are appended through the event store; nothing was written")
	}
	recs := make([]*kgo.Record, len(evs))
	results := make([]Result, len(evs))
	var issues []FieldIssue
	for i, ae := range req.Events {
		rec, res, p := s.appendRecord(r.Context(), ae, &evs[i], i)
		switch {
		case p == nil:
			recs[i], results[i] = rec, res
		case p.Status == http.StatusUnprocessableEntity:
			issues = append(issues, p.Errors...)
		default:
			return p
		}
	}
	if issues != nil {
		return problem(http.StatusUnprocessableEntity, "invalid-data", "Events do not fit their schemas",
			"one or more events are not a registered schema of their type; nothing was written", issues...)
	}
	results, _, p = s.appendEvents(w, r.Context(), "eventstore/append", evs, recs, results)
	if p != nil {
		return p
	}
	writeResults(w, results, true)
	return nil
}

// appendRequestEvents checks the request's shape and returns its events as the write path's
// Events (id, type, aggregate, expected version), listing every missing field.
func (s *Service) appendRequestEvents(req eventstore.AppendRequest) ([]Event, *Problem) {
	if len(req.Events) == 0 || len(req.Events) > s.cfg.MaxBatch {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed request",
			fmt.Sprintf("events must hold 1 to %d events", s.cfg.MaxBatch), FieldIssue{Field: "events", Message: "wrong length"})
	}
	evs := make([]Event, len(req.Events))
	var issues []FieldIssue
	missing := func(i int, field string) {
		issues = append(issues, FieldIssue{Field: fieldPrefix(i) + field, Message: "is required"})
	}
	for i, ae := range req.Events {
		switch {
		case ae.AggregateID == "":
			missing(i, "aggregateId")
		case len(ae.AggregateID) > maxAggregateIDLen:
			issues = append(issues, FieldIssue{Field: fieldPrefix(i) + "aggregateId", Message: "is too long"})
		}
		if ae.Headers[eventstore.HeaderID] == "" {
			missing(i, "headers.ce_id")
		} else if len(ae.Headers[eventstore.HeaderID]) > maxIDLen {
			issues = append(issues, FieldIssue{Field: fieldPrefix(i) + "headers.ce_id", Message: "is too long"})
		}
		if ae.Headers[eventstore.HeaderType] == "" {
			missing(i, "headers.ce_type")
		}
		if len(ae.Value) == 0 {
			missing(i, "value")
		}
		if ae.ExpectedVersion != nil && *ae.ExpectedVersion < 0 {
			issues = append(issues, FieldIssue{Field: fieldPrefix(i) + "expectedVersion", Message: "must not be negative"})
		}
		evs[i] = Event{ID: ae.Headers[eventstore.HeaderID], Type: ae.Headers[eventstore.HeaderType],
			AggregateID: ae.AggregateID, ExpectedVersion: ae.ExpectedVersion}
	}
	if issues != nil {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed request", "missing or bad fields; nothing was written", issues...)
	}
	return evs, nil
}

// appendRecord checks that ae's value is framed with a schema registered under its type's
// subject and decodes with it, and makes its record: key the aggregate id, the given
// headers but those the store and ingest own (ce_subject from the aggregate, ce_userid and
// pyrite-principal from authorize, ce_aggregateversion from the store), timestamp ce_time.
func (s *Service) appendRecord(ctx context.Context, ae eventstore.AppendEvent, ev *Event, at int) (*kgo.Record, Result, *Problem) {
	bad := func(field, msg string) *Problem {
		return problem(http.StatusUnprocessableEntity, "invalid-data", "Event does not fit its schema", msg,
			FieldIssue{Field: fieldPrefix(at) + field, Message: msg})
	}
	topic, err := s.router.RawTopic(ev.Type)
	if err != nil {
		return nil, Result{}, bad("headers.ce_type", err.Error())
	}
	subject, err := s.router.Subject(ev.Type)
	if err != nil {
		return nil, Result{}, bad("headers.ce_type", err.Error())
	}
	var data map[string]any
	sch, err := s.codec.Decode(ctx, ae.Value, nil, &data)
	switch {
	case errors.Is(err, codec.ErrRegistryUnavailable):
		return nil, Result{}, unavailable("the schema registry is unavailable: " + err.Error())
	case err != nil:
		return nil, Result{}, bad("value", "not a registered schema's Confluent-framed Avro: "+err.Error())
	case sch.Subject != "" && sch.Subject != subject:
		return nil, Result{}, bad("value", fmt.Sprintf("schema id %d is %s, not %s's subject %s", sch.ID, sch.Subject, ev.Type, subject))
	}
	keys := make([]string, 0, len(ae.Headers)+3)
	for k := range ae.Headers {
		switch k {
		case "ce_subject", "ce_userid", HeaderPrincipal, eventstore.HeaderAggregateVersion:
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	hs := make([]kgo.RecordHeader, 0, len(keys)+3)
	for _, k := range keys {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(ae.Headers[k])})
	}
	hs = append(hs, kgo.RecordHeader{Key: "ce_subject", Value: []byte(ev.AggregateID)})
	if ev.Metadata.UserID != "" {
		hs = append(hs, kgo.RecordHeader{Key: "ce_userid", Value: []byte(ev.Metadata.UserID)})
	}
	if ev.principal != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderPrincipal, Value: []byte(ev.principal)})
	}
	at0, err := time.Parse(time.RFC3339Nano, ae.Headers["ce_time"])
	if err != nil {
		at0 = s.now()
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(ev.AggregateID), Value: ae.Value, Headers: hs, Timestamp: at0}
	return rec, Result{ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, Topic: topic, SchemaID: sch.ID}, nil
}
