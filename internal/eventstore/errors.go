package eventstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrVersionConflict means an event's expected version is not the stream's version. The
	// error is a *ConflictError; nothing of the append was written.
	ErrVersionConflict = errors.New("eventstore: expected version conflict")
	// ErrIDConflict means an event id was seen before for another event (another aggregate or
	// type), or an append mixes ids already written with new ones. The error is an
	// *IDConflictError; nothing was written.
	ErrIDConflict = errors.New("eventstore: event id conflict")
	// ErrNotOwner means this instance does not own the partition: the request belongs to the
	// owner (Route says which). Transient while ownership moves.
	ErrNotOwner = errors.New("eventstore: partition owned by another instance")
	// ErrNotReady means this instance owns the partition but is still fencing the previous
	// writer or rebuilding the partition's index. Transient: retry shortly.
	ErrNotReady = errors.New("eventstore: partition not ready")
	// ErrNoAssignment means the instance has not joined its group yet, so it does not know
	// who owns what. Transient.
	ErrNoAssignment = errors.New("eventstore: no partition assignment yet")
	// ErrUnknownTopic means a topic is not one of the store's topics.
	ErrUnknownTopic = errors.New("eventstore: unknown topic")
	// ErrSpansPartitions means one append holds events for more than one partition; an
	// append is one Kafka transaction of one partition's writer.
	ErrSpansPartitions = errors.New("eventstore: append spans partitions")
	// ErrUnavailable means the append's transaction did not commit (or its outcome is not
	// known): retry with the same event ids, which makes the retry safe.
	ErrUnavailable = errors.New("eventstore: transaction did not commit")
	// ErrClosed means the store is closed.
	ErrClosed = errors.New("eventstore: closed")
	// ErrBadConfig means New was given an unusable Config; the error lists every problem.
	ErrBadConfig = errors.New("eventstore: bad config")
	// ErrBadAssignment means an ownership table or member metadata from the group could not
	// be decoded.
	ErrBadAssignment = errors.New("eventstore: bad group assignment")
)

// Transient reports whether err is worth retrying (possibly at another instance): the
// partition is moving, rebuilding, or its transaction did not commit.
func Transient(err error) bool {
	return errors.Is(err, ErrNotOwner) || errors.Is(err, ErrNotReady) ||
		errors.Is(err, ErrNoAssignment) || errors.Is(err, ErrUnavailable)
}

// ConflictError is an expectedVersion mismatch.
type ConflictError struct {
	Index       int // the event of the append at fault
	AggregateID string
	Expected    int64
	Current     int64 // the stream's version when the append was decided
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("eventstore: %s: expected version %d, stream is at version %d", e.AggregateID, e.Expected, e.Current)
}

// Unwrap returns ErrVersionConflict.
func (e *ConflictError) Unwrap() error { return ErrVersionConflict }

// IDConflictError is an event id that cannot be deduplicated.
type IDConflictError struct {
	Index  int // the event of the append at fault
	ID     string
	Reason string
}

func (e *IDConflictError) Error() string {
	return fmt.Sprintf("eventstore: event id %q: %s", e.ID, e.Reason)
}

// Unwrap returns ErrIDConflict.
func (e *IDConflictError) Unwrap() error { return ErrIDConflict }
