package bus

import "errors"

// Sentinel errors; callers branch with errors.Is.
var (
	// ErrPermanent marks a failure that retrying cannot fix (see Permanent). The Runner sends
	// the record to the dead-letter topic at once.
	ErrPermanent = errors.New("bus: permanent failure")
	// ErrDropped is returned by Publish when a middleware cancelled the event (returned a nil
	// event): no handler ran. It is not a failure.
	ErrDropped = errors.New("bus: event dropped by middleware")
	// ErrInvalidEvent means an event cannot be published (nil or without a type) or was
	// rejected by the Validation middleware.
	ErrInvalidEvent = errors.New("bus: invalid event")
	// ErrInvalidPattern means a subscription pattern is empty or has an empty segment.
	ErrInvalidPattern = errors.New("bus: invalid pattern")
	// ErrInvalidName means a handler name is too long or holds a comma or a control character
	// (names travel in retry and dead-letter headers as a comma-separated list).
	ErrInvalidName = errors.New("bus: invalid handler name")
	// ErrDuplicateName means a handler name is already subscribed on the bus.
	ErrDuplicateName = errors.New("bus: duplicate handler name")
	// ErrHandlerPanic wraps the value a handler or middleware panicked with. Such errors are
	// permanent.
	ErrHandlerPanic = errors.New("bus: handler panicked")
	// ErrBadHeader means a Kafka record header could not be parsed (a CloudEvents attribute
	// or a retry control header).
	ErrBadHeader = errors.New("bus: bad record header")
	// ErrInvalidConfig means a RunnerConfig is incomplete or inconsistent.
	ErrInvalidConfig = errors.New("bus: invalid runner config")
	// ErrRunnerStarted is returned by a second call of Runner.Run.
	ErrRunnerStarted = errors.New("bus: runner already started")
)

// permanentError wraps an error so that errors.Is(err, ErrPermanent) holds while the
// original error stays reachable.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Permanent marks err as permanent: a bus does not retry it, and a Runner sends the record
// straight to the dead-letter topic. Permanent(nil) is nil. Any error not marked is
// transient.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return &permanentError{err}
}

// IsPermanent reports whether err is marked permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
