package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch with errors.Is.
var (
	// ErrUnsupportedURL means Open was given a URL whose scheme is neither sqlite nor postgres,
	// or an SQLite path it cannot use (":memory:", a path with '?').
	ErrUnsupportedURL = errors.New("store: unsupported store URL")
	// ErrSchemaTooNew means the database was migrated by a newer build than this one; the
	// store refuses to run on a schema it does not know.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this build")
	// ErrInvalidEvent means an event passed to ApplyBatch lacks what the store needs (a topic,
	// a non-negative partition and offset), or one a projection's apply function rejects for
	// what it holds (wrap it: fmt.Errorf("%w: ...", ErrInvalidEvent)). Permanent.
	ErrInvalidEvent = errors.New("store: invalid event")
	// ErrPositionConflict means another transaction moved the projection's stored position of
	// a partition while this batch was being applied (a second consumer still working on a
	// partition after a rebalance). The batch was rolled back; the caller re-reads Positions
	// and seeks there, or gives the partition up.
	ErrPositionConflict = errors.New("store: projection position moved concurrently")
	// ErrVersionNotReached means WaitVersion's context ended before the requested version was
	// applied; the error also wraps the context's error.
	ErrVersionNotReached = errors.New("store: version not reached")
)

// ApplyError is returned by ApplyBatch when the apply function failed on one event. The whole
// batch was rolled back: neither rows nor positions changed. Events before Index may be
// applied again as a batch of their own; Permanent says whether retrying Event can ever
// succeed (if not, it belongs in the dead-letter topic).
type ApplyError struct {
	Index int   // position of Event in the batch
	Event Event // the event that failed
	Err   error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("store: apply %s %s[%d]@%d (batch index %d): %v",
		e.Event.Type, e.Event.Topic, e.Event.Partition, e.Event.Offset, e.Index, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Permanent reports whether the failure is in the event itself (ErrInvalidEvent) rather than
// in the database: retrying will not help.
func (e *ApplyError) Permanent() bool { return errors.Is(e.Err, ErrInvalidEvent) }
