// Package workeffort is the WorkEffort aggregate as a domain module (Module): the fold of its
// events into the entity's current state (Apply, the seed's applyEvent), shared by the event
// store's folds and commands and by its read model: the work_efforts table, the work-efforts
// projection (ApplyEvent) and the query routes GET /v1/work-efforts[/{id}] (ReadModel).
//
// Guarantees:
//   - Apply is a pure function: it never mutates its input and has no side effects, so it is
//     safe for concurrent use and the same events always fold to the same State.
//   - Status moves as the events say (planned, then in-progress on Started, then completed on
//     Completed). Like the seed, the fold records facts and does not police transitions:
//     command handlers reject invalid ones before an event exists.
//   - Version is the aggregate version of the last applied event: the ce_aggregateversion
//     header when the caller has one (aggregateVersion > 0), else the previous version plus
//     one. An event whose header version is not above the state's version is a duplicate or
//     out-of-order delivery and is refused with ErrStale, leaving the state unchanged.
//   - Times are kept in UTC at millisecond precision (the precision of Avro timestamp-millis
//     and of the stores), so a State read back from a store equals the folded one.
//
// Data maps are decoded Avro records as hamba/avro produces them (int as int, long as int64,
// timestamp-millis as time.Time, a nullable union as the value or nil); wrapped unions
// ({"string": v}), pointers and JSON numbers are accepted too.
package workeffort

import (
	"errors"
	"fmt"
	"time"
)

// Statuses, as served by the query API.
const (
	StatusPlanned    = "planned"
	StatusInProgress = "in-progress"
	StatusCompleted  = "completed"
)

// Event types the fold knows. Other WorkEffort types (e.g. TypeGitHubIssueCreationFailed)
// only advance Version.
const (
	TypeCreated                   = "WorkEffort:Created"
	TypeStarted                   = "WorkEffort:Started"
	TypeProgressUpdated           = "WorkEffort:ProgressUpdated"
	TypeCompleted                 = "WorkEffort:Completed"
	TypeGitHubIssueCreated        = "WorkEffort:GitHubIssueCreated"
	TypeGitHubIssueCreationFailed = "WorkEffort:GitHubIssueCreationFailed"
	TypeGitHubIssueClosed         = "WorkEffort:GitHubIssueClosed"
	TypeNeedsManualSync           = "WorkEffort:NeedsManualSync"
)

// Sentinel errors.
var (
	// ErrInvalidData means an event's data lacks a field the fold needs or holds a value of the
	// wrong type or out of range. It is permanent for that event.
	ErrInvalidData = errors.New("workeffort: invalid event data")
	// ErrStale means the event's aggregate version is not above the state's version: it was
	// already applied (a redelivery) or arrived out of order. The state is returned unchanged;
	// callers skip the event.
	ErrStale = errors.New("workeffort: stale aggregate version")
)

// State is a work effort as the read model serves it. Times are nil until the event that sets
// them has been applied.
type State struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Description is nil when Created said null (or before Created): JSON null, as written.
	Description *string    `json:"description"`
	Status      string     `json:"status"`
	Progress    int        `json:"progress"`
	CreatedAt   *time.Time `json:"createdAt"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	Version     int64      `json:"version"`
	// Assignee is the assignee's email from Created, replaced by Completed's assigneeEmail
	// when that is set; "" when unassigned.
	Assignee string `json:"assignee,omitempty"`
	// GitHubIssue is the issue number once the GitHub saga created the issue.
	GitHubIssue       *int   `json:"githubIssue,omitempty"`
	GitHubIssueURL    string `json:"githubIssueUrl,omitempty"`
	GitHubIssueClosed bool   `json:"githubIssueClosed,omitempty"`
	// NeedsManualSync is set by NeedsManualSync (the GitHub saga's compensation) and never
	// cleared by the events known today.
	NeedsManualSync  bool   `json:"needsManualSync,omitempty"`
	ManualSyncReason string `json:"manualSyncReason,omitempty"`
	// UpdatedAt is the time of the last applied event; nil before the first.
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
}

// New returns the state before any event: the seed's initial state (planned, progress 0,
// version 0).
func New(id string) State {
	return State{ID: id, Status: StatusPlanned}
}

// Apply returns s with one event applied. eventType is the full type ("WorkEffort:Started");
// data is the decoded record; aggregateVersion is the ce_aggregateversion header or 0 when
// absent; at is the event time (ce_time), used for a time the data lacks and for UpdatedAt.
//
// Per type:
//   - Created: title, description, assignee; createdAt from the data (else at).
//   - Started: status in-progress; startedAt from the data (else at); title if still empty.
//   - ProgressUpdated (v1 to v3 fields): progress = newProgress (required, 0 to 100).
//   - Completed: status completed, progress 100; completedAt from the data (else at); title if
//     still empty; assignee = assigneeEmail when set.
//   - GitHubIssueCreated: GitHubIssue = issueNumber (required), GitHubIssueURL = url, open.
//   - GitHubIssueClosed: GitHubIssue = issueNumber (required), GitHubIssueClosed.
//   - NeedsManualSync: NeedsManualSync, ManualSyncReason = reason.
//   - anything else: only Version and UpdatedAt change.
//
// On error the returned State is s unchanged; errors wrap ErrStale or ErrInvalidData.
func Apply(s State, eventType string, data map[string]any, aggregateVersion int64, at time.Time) (State, error) {
	if aggregateVersion > 0 && aggregateVersion <= s.Version {
		return s, fmt.Errorf("%w: %s version %d, state already at %d", ErrStale, eventType, aggregateVersion, s.Version)
	}
	n := s
	if n.Status == "" {
		n.Status = StatusPlanned
	}
	if aggregateVersion > 0 {
		n.Version = aggregateVersion
	} else {
		n.Version = s.Version + 1
	}
	at = norm(at)
	if !at.IsZero() {
		n.UpdatedAt = &at
	}
	f := fields{typ: eventType, data: data}
	switch eventType {
	case TypeCreated:
		n.Title = f.str("title", n.Title)
		n.Description = f.optStr("description")
		n.Assignee = f.str("assignee", "")
		n.CreatedAt = f.time("createdAt", at)
	case TypeStarted:
		n.Status = StatusInProgress
		n.StartedAt = f.time("startedAt", at)
		if n.Title == "" {
			n.Title = f.str("title", "")
		}
	case TypeProgressUpdated:
		p, ok := f.int("newProgress")
		if !ok {
			f.fail("newProgress", "missing")
		} else if p < 0 || p > 100 {
			f.fail("newProgress", fmt.Sprintf("%d is outside 0 to 100", p))
		}
		n.Progress = int(p)
	case TypeCompleted:
		n.Status = StatusCompleted
		n.Progress = 100
		n.CompletedAt = f.time("completedAt", at)
		if n.Title == "" {
			n.Title = f.str("title", "")
		}
		n.Assignee = f.str("assigneeEmail", n.Assignee)
	case TypeGitHubIssueCreated:
		n.GitHubIssue = f.issue()
		n.GitHubIssueURL = f.str("url", "")
		n.GitHubIssueClosed = false
	case TypeGitHubIssueClosed:
		n.GitHubIssue = f.issue()
		n.GitHubIssueClosed = true
	case TypeNeedsManualSync:
		n.NeedsManualSync = true
		n.ManualSyncReason = f.str("reason", "")
	}
	if f.err != nil {
		return s, f.err
	}
	return n, nil
}

// norm puts t in UTC at millisecond precision; the zero time stays zero.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}
