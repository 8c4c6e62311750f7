package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
)

// CommandPath is the command route: the event store loads the aggregate, runs the domain's
// decide function and appends what it decided, expecting the version it loaded.
const CommandPath = "/v1/commands"

// CommandAttempts bounds how often POST /v1/commands loads, decides and appends when another
// writer moved the stream on in between (a version conflict); past it the answer is 409.
const CommandAttempts = 3

// CommandRequest is the body of POST /v1/commands.
type CommandRequest struct {
	// ID, when set, is the ce_id of the first event the command appends (the next ones get
	// "<id>/2", "<id>/3", ...): a repeated command is then answered from the dedupe window.
	ID string `json:"id,omitempty"`
	// Type is a command type a domain module declares, e.g. "WorkEffort:UpdateProgress".
	Type        string         `json:"type"`
	AggregateID string         `json:"aggregateId"`
	Data        map[string]any `json:"data"`
	Metadata    Metadata       `json:"metadata"`
}

// CommandEvent is one event of a 201 answer of POST /v1/commands: where it was written and
// the data it was written with.
type CommandEvent struct {
	Result
	Data map[string]any `json:"data"`
}

// postCommand runs one command: read the aggregate's stream on this instance (forwarding to
// the partition's owner), fold it, decide, append the decisions with expectedVersion set to
// the version read, and on a version conflict start over, CommandAttempts times in all.
func (s *Service) postCommand(w http.ResponseWriter, r *http.Request) *Problem {
	raw, p := readBody(w, r, s.cfg.MaxBody, new(bytes.Buffer)) // may be forwarded: not pooled
	if p != nil {
		return p
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var req CommandRequest
	if err := dec.Decode(&req); err != nil {
		return problem(http.StatusBadRequest, "malformed", "Malformed command", "the body is not a command: "+err.Error())
	}
	var issues []FieldIssue
	if req.Type == "" {
		issues = append(issues, FieldIssue{Field: "type", Message: "is required"})
	}
	if req.AggregateID == "" {
		issues = append(issues, FieldIssue{Field: "aggregateId", Message: "is required"})
	} else if len(req.AggregateID) > maxAggregateIDLen {
		issues = append(issues, FieldIssue{Field: "aggregateId", Message: "is too long"})
	}
	if len(req.ID) > maxIDLen-4 {
		issues = append(issues, FieldIssue{Field: "id", Message: "is too long"})
	}
	if issues != nil {
		return problem(http.StatusBadRequest, "malformed", "Malformed command", "the command is missing fields", issues...)
	}
	cmd, ok := s.cfg.Commands[req.Type]
	if !ok {
		return problem(http.StatusUnprocessableEntity, "unknown-command", "Unknown command type",
			fmt.Sprintf("no domain module declares the command %q", req.Type), FieldIssue{Field: "type", Message: "is not a declared command"})
	}
	agg, err := s.router.Aggregate(cmd.Aggregate)
	if err != nil {
		return problem(http.StatusInternalServerError, "unknown-aggregate-type", "Unknown aggregate type",
			fmt.Sprintf("the command's aggregate %s is not in the topology: %v", cmd.Aggregate, err))
	}
	route, err := s.awaitRoute(r, agg.RawTopic(), req.AggregateID)
	if err != nil {
		return storeProblem(err, "")
	}
	if forwarded, p := s.forwardIfRemote(w, r, raw, route); forwarded || p != nil {
		return p
	}
	for attempt := 1; ; attempt++ {
		st, p := s.read(r.Context(), agg, req.AggregateID, 1)
		if p != nil {
			return p
		}
		state, err := cmd.Fold(st)
		if err != nil {
			return problem(http.StatusInternalServerError, "fold-failed", "The stream does not fold", err.Error())
		}
		decided, err := cmd.Decide(state, req.Data)
		var rej *eventstore.RejectedError
		switch {
		case errors.As(err, &rej):
			return problem(http.StatusUnprocessableEntity, "invariant-"+rej.Invariant, "Command rejected: "+rej.Invariant,
				rej.Detail+"; nothing was written", FieldIssue{Field: "invariant", Message: rej.Invariant})
		case err != nil:
			return problem(http.StatusInternalServerError, "decide-failed", "The command failed", err.Error())
		case len(decided) == 0:
			writeJSON(w, http.StatusCreated, map[string]any{"events": []CommandEvent{}})
			return nil
		}
		results, p := s.appendDecided(w, r, req, decided, st.Version, s.store.IDs(route))
		if p != nil && p.Status == http.StatusConflict && strings.HasSuffix(p.Type, ":version-conflict") && attempt < CommandAttempts {
			continue // another writer moved the stream on: decide again on what it is now
		}
		if p != nil {
			if p.Status == http.StatusConflict {
				p.Detail += fmt.Sprintf(" (after %d attempts)", attempt)
			}
			return p
		}
		out := make([]CommandEvent, len(results))
		for i := range results {
			out[i] = CommandEvent{Result: results[i], Data: decided[i].Data}
		}
		writeJSON(w, http.StatusCreated, map[string]any{"events": out})
		return nil
	}
}

// appendDecided writes the decided events as POST /v1/events:batch would, each expecting the
// stream at version (the first) or right after the one before it.
func (s *Service) appendDecided(w http.ResponseWriter, r *http.Request, req CommandRequest, decided []eventstore.Decision, version int64, ids *eventstore.IDs) ([]Result, *Problem) {
	type batchEvent struct {
		ID              string         `json:"id,omitempty"`
		Type            string         `json:"type"`
		AggregateID     string         `json:"aggregateId"`
		ExpectedVersion int64          `json:"expectedVersion"`
		Data            map[string]any `json:"data"`
		Metadata        Metadata       `json:"metadata"`
	}
	batch := make([]batchEvent, len(decided))
	for i, d := range decided {
		id := req.ID
		if id != "" && i > 0 {
			id += "/" + strconv.Itoa(i+1)
		}
		batch[i] = batchEvent{ID: id, Type: d.Type, AggregateID: req.AggregateID, ExpectedVersion: version + int64(i), Data: d.Data, Metadata: req.Metadata}
	}
	raw, err := json.Marshal(map[string]any{"events": batch})
	if err != nil {
		return nil, problem(http.StatusInternalServerError, "decide-failed", "The command's events cannot be written", err.Error())
	}
	evs, p := batchOfEvents(raw, len(batch), nil)
	if p != nil {
		return nil, p
	}
	if p := authorize(r, evs); p != nil {
		return nil, p
	}
	mem := newRecordMem(r, len(evs))
	mem.ids = ids
	recs, results := mem.ptrs, mem.results
	for i := range evs {
		rec := mem.record(i)
		res, p := s.prepare(r.Context(), &evs[i], i, rec, mem, true)
		if p != nil {
			return nil, p // the domain decided events that do not fit their schemas: a bug of the module
		}
		recs[i], results[i] = rec, res
	}
	results, _, p = s.appendEvents(w, r.Context(), "commands", evs, recs, results)
	if p != nil {
		return nil, p
	}
	return append([]Result(nil), results...), nil
}
