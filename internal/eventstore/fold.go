package eventstore

import (
	"errors"
	"fmt"
)

// Fold folds a stream, read from its first version, into its aggregate's state (the seed's
// rebuild function). The state's shape is the aggregate's own; the event store only hands it
// from Fold to Decide and to JSON. An event the fold refuses fails it, naming its version.
type Fold func(st Stream) (state any, err error)

// Decide runs one command on an aggregate's folded state (the seed's command handler): it
// returns the events to append, in order, or a *RejectedError naming the invariant the command
// breaks. data is the command's "data" object as encoding/json decodes it into a map, with
// numbers as json.Number. Decide must be pure (its clock aside): on a version conflict it runs
// again on the newer state.
type Decide func(state any, data map[string]any) ([]Decision, error)

// Decision is one event a command decided on: its type ("WorkEffort:ProgressUpdated") and its
// data, as POST /v1/events takes it.
type Decision struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// Command is one command type of an aggregate: the fold that loads the aggregate and the
// decide function that runs on it.
type Command struct {
	Aggregate string
	Fold      Fold
	Decide    Decide
}

// ErrRejected is wrapped by *RejectedError.
var ErrRejected = errors.New("eventstore: command rejected")

// RejectedError is a command refused because it breaks an invariant of its aggregate: nothing
// was appended, and retrying the same command on the same state will not help.
type RejectedError struct {
	// Invariant names the rule, e.g. "progress-range"; it is part of the API's answer.
	Invariant string
	// Detail says what broke it.
	Detail string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("eventstore: command rejected: %s: %s", e.Invariant, e.Detail)
}

// Unwrap returns ErrRejected.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// Reject returns a *RejectedError for invariant, its detail formatted.
func Reject(invariant, format string, args ...any) error {
	return &RejectedError{Invariant: invariant, Detail: fmt.Sprintf(format, args...)}
}
