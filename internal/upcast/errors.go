package upcast

import (
	"errors"
	"fmt"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Sentinel errors. Besides these, Upcast and Writer return errors wrapping codec's
// ErrUnknownSchemaID, ErrUnknownSubject, ErrUnsupportedSchema, ErrInvalidData and
// ErrRegistryUnavailable.
var (
	// ErrNotFramed means a value is not in the Confluent wire format (too short, or a first
	// byte other than 0x00). It also wraps codec.ErrShortValue or codec.ErrBadMagic.
	ErrNotFramed = errors.New("upcast: value is not Confluent-framed")
	// ErrNoPath means a value's version cannot be carried to the newest: a step has no
	// function and the two versions do not resolve.
	ErrNoPath = errors.New("upcast: no path to the newest version")
	// ErrStepFailed means a registered function returned an error or panicked. The error is a
	// *StepError.
	ErrStepFailed = errors.New("upcast: upcaster function failed")
	// ErrGap means Check found versions without a path to the newest. The error joins one
	// *GapError per gap.
	ErrGap = errors.New("upcast: chain gap")
	// ErrDuplicateStep means a function is already registered for the event type and version.
	ErrDuplicateStep = errors.New("upcast: step registered twice")
	// ErrBadStep means a registration names no event type or a version below 1.
	ErrBadStep = errors.New("upcast: bad step")
)

// Transient reports whether err is worth retrying with the same input: the registry could
// not be asked. Every other error is permanent for the value at hand.
func Transient(err error) bool { return errors.Is(err, codec.ErrRegistryUnavailable) }

// StepError is a registered function's failure on one value.
type StepError struct {
	EventType string
	From, To  int // versions
	Err       error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("upcast %s v%d to v%d: %v", e.EventType, e.From, e.To, e.Err)
}

// Unwrap returns ErrStepFailed and the function's error.
func (e *StepError) Unwrap() []error { return []error{ErrStepFailed, e.Err} }

// GapError is one step Check found without a path.
type GapError struct {
	Subject   string
	EventType string
	From, To  int // versions; To is 0 when From's own schema is the problem
	Reason    string
}

func (e *GapError) Error() string {
	if e.To == 0 {
		return fmt.Sprintf("%s version %d: %s", e.Subject, e.From, e.Reason)
	}
	return fmt.Sprintf("%s version %d to %d (%s): %s", e.Subject, e.From, e.To, e.EventType, e.Reason)
}

// Unwrap returns ErrGap.
func (e *GapError) Unwrap() error { return ErrGap }
