package workeffort

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
)

// Command types, as POST /v1/commands takes them.
const (
	CommandCreate         = "WorkEffort:Create"
	CommandStart          = "WorkEffort:Start"
	CommandUpdateProgress = "WorkEffort:UpdateProgress" // the seed's UpdateProgressCommand
	CommandComplete       = "WorkEffort:Complete"
)

// Invariants a command may break, as a 422 names them.
const (
	InvariantNotCreated     = "created-before"          // Start, UpdateProgress and Complete need a created effort
	InvariantAlreadyCreated = "created-once"            // Create needs a new aggregate id
	InvariantProgressRange  = "progress-range"          // progress stays in 0..100
	InvariantNotCompleted   = "not-completed"           // nothing changes a completed effort
	InvariantStartedBefore  = "started-before-complete" // Complete needs a started effort
	InvariantStartedOnce    = "started-once"            // Start needs a planned effort
	InvariantFields         = "fields"                  // the command's data lacks a field or has the wrong kind
)

// Commands returns the WorkEffort commands: each decides on the folded State and answers the
// events to append, or an *eventstore.RejectedError naming the invariant it breaks.
//   - Create {title, description?, assignee?}: Created, only for an aggregate with no events.
//   - Start {}: Started, only after Created and only once.
//   - UpdateProgress {newProgress}: ProgressUpdated with oldProgress (the state's), delta and
//     formatted computed, as the seed's upcasters would; newProgress in 0..100, not on a
//     completed effort, and only after Created.
//   - Complete {ticketCount?, assigneeEmail?}: Completed with duration since creation, only
//     after Started and only once.
//
// now stamps createdAt, startedAt and completedAt.
func Commands(now func() time.Time) map[string]eventstore.Decide {
	at := func() time.Time { return time.UnixMilli(now().UnixMilli()).UTC() }
	return map[string]eventstore.Decide{
		CommandCreate: func(state any, data map[string]any) ([]eventstore.Decision, error) {
			s := state.(State)
			if s.Version > 0 {
				return nil, eventstore.Reject(InvariantAlreadyCreated, "work effort %q already has %d events", s.ID, s.Version)
			}
			title, ok := data["title"].(string)
			if !ok || title == "" {
				return nil, eventstore.Reject(InvariantFields, "data.title must be a non-empty string")
			}
			return one(TypeCreated, map[string]any{"title": title, "description": optString(data["description"]),
				"assignee": optString(data["assignee"]), "createdAt": at()}), nil
		},
		CommandStart: func(state any, _ map[string]any) ([]eventstore.Decision, error) {
			s := state.(State)
			if err := created(s); err != nil {
				return nil, err
			}
			if s.Status != StatusPlanned {
				return nil, eventstore.Reject(InvariantStartedOnce, "work effort %q is %s, not planned", s.ID, s.Status)
			}
			return one(TypeStarted, map[string]any{"title": s.Title, "startedAt": at()}), nil
		},
		CommandUpdateProgress: func(state any, data map[string]any) ([]eventstore.Decision, error) {
			s := state.(State)
			p, ok := wholeNumber(data["newProgress"])
			if !ok {
				return nil, eventstore.Reject(InvariantFields, "data.newProgress must be a whole number")
			}
			if p < 0 || p > 100 {
				return nil, eventstore.Reject(InvariantProgressRange, "newProgress %d is outside 0..100", p)
			}
			if err := created(s); err != nil {
				return nil, err
			}
			if s.Status == StatusCompleted {
				return nil, eventstore.Reject(InvariantNotCompleted, "work effort %q is completed", s.ID)
			}
			return one(TypeProgressUpdated, map[string]any{"oldProgress": s.Progress, "newProgress": p,
				"delta": p - int64(s.Progress), "formatted": strconv.FormatInt(p, 10) + "%"}), nil
		},
		CommandComplete: func(state any, data map[string]any) ([]eventstore.Decision, error) {
			s := state.(State)
			if err := created(s); err != nil {
				return nil, err
			}
			switch s.Status {
			case StatusCompleted:
				return nil, eventstore.Reject(InvariantNotCompleted, "work effort %q is already completed", s.ID)
			case StatusPlanned:
				return nil, eventstore.Reject(InvariantStartedBefore, "work effort %q was never started", s.ID)
			}
			tickets := int64(0)
			if v, ok := data["ticketCount"]; ok {
				if tickets, ok = wholeNumber(v); !ok || tickets < 0 || tickets > math.MaxInt32 {
					return nil, eventstore.Reject(InvariantFields, "data.ticketCount must be a whole number from 0")
				}
			}
			t := at()
			var dur int64
			if s.CreatedAt != nil {
				dur = max(0, t.Sub(*s.CreatedAt).Milliseconds())
			}
			return one(TypeCompleted, map[string]any{"title": s.Title, "completedAt": t, "duration": dur,
				"ticketCount": tickets, "assigneeEmail": optString(data["assigneeEmail"])}), nil
		},
	}
}

func one(typ string, data map[string]any) []eventstore.Decision {
	return []eventstore.Decision{{Type: typ, Data: data}}
}

// created rejects a command on a work effort without events.
func created(s State) error {
	if s.Version == 0 {
		return eventstore.Reject(InvariantNotCreated, "work effort %q was never created", s.ID)
	}
	return nil
}

// wholeNumber reads a JSON number (float64 or json.Number) that is a whole number.
func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case fmt.Stringer: // json.Number
		i, err := strconv.ParseInt(n.String(), 10, 64)
		return i, err == nil
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// optString is v when it is a non-empty string, else nil (Avro null).
func optString(v any) any {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	return nil
}
