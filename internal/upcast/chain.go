package upcast

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Chain holds the registered upcaster functions, at most one per (event type, from version).
// Register every function before the Chain is handed to New; after that it is only read and
// is safe for concurrent use.
type Chain struct {
	steps map[stepKey]*step
}

type stepKey struct {
	eventType string
	from      int
}

// step is one registered function, wrapped to work on values of any representation.
type step struct {
	eventType string
	from      int
	in, out   reflect.Type
	// apply turns cur (at version from) into the value at to.
	apply func(ctx context.Context, c *codec.Codec, cur inflight, to *codec.Schema, toVersion int) (inflight, error)
}

// inflight is an event value at one schema version: framed bytes, a Go value, or both.
type inflight struct {
	sch    *codec.Schema
	ver    int    // sch's version under the subject
	framed []byte // Confluent-framed with sch.ID, or nil
	val    any    // a pointer to a struct or a map[string]any, at sch, or nil
	by     *step  // the function that produced val, or nil
}

// bytes returns v framed, encoding its Go value when it has no bytes yet.
func (v inflight) bytes(c *codec.Codec) ([]byte, error) {
	if v.framed != nil {
		return v.framed, nil
	}
	b, err := c.Encode(v.sch, v.val)
	if err != nil && v.by != nil {
		return nil, v.by.outputError(v.ver, err)
	}
	return b, err
}

func (s *step) outputError(to int, err error) error {
	return &StepError{EventType: s.eventType, From: s.from, To: to,
		Err: fmt.Errorf("output %s does not fit version %d: %w", s.out, to, err)}
}

// NewChain returns an empty Chain: every step is left to schema resolution.
func NewChain() *Chain { return &Chain{steps: map[stepKey]*step{}} }

// Register adds fn as the step of eventType ("WorkEffort:ProgressUpdated") from version from
// to the next registered version. From and To are Go structs with `avro:"name"` tags shaped
// like the two versions (struct fields the schema lacks are ignored; schema fields the struct
// lacks are skipped on input and take their defaults on output), or map[string]any holding
// values as codec.Decode produces them. fn must not keep or share its argument. When fn's
// output type is the next step's input type the value goes on without being re-encoded.
//
// A function that returns an error or panics fails the value at hand with a *StepError.
// Registering a second function for the same step returns ErrDuplicateStep; an empty event
// type, a version below 1 or a nil fn returns ErrBadStep.
func Register[From, To any](c *Chain, eventType string, from int, fn func(From) (To, error)) error {
	if eventType == "" || from < 1 || fn == nil {
		return fmt.Errorf("%w: event type %q, from version %d", ErrBadStep, eventType, from)
	}
	key := stepKey{eventType, from}
	if _, dup := c.steps[key]; dup {
		return fmt.Errorf("%w: %s from version %d", ErrDuplicateStep, eventType, from)
	}
	s := &step{eventType: eventType, from: from, in: reflect.TypeFor[From](), out: reflect.TypeFor[To]()}
	outIsMap := s.out.Kind() == reflect.Map
	s.apply = func(ctx context.Context, c *codec.Codec, cur inflight, to *codec.Schema, toVersion int) (inflight, error) {
		// One allocation holds the input (decoded into it, so it escapes) and the output.
		io := new(struct {
			in  From
			out To
		})
		switch v := cur.val.(type) {
		case *From:
			io.in = *v
		case From:
			io.in = v
		default:
			data, err := cur.bytes(c)
			if err != nil {
				return inflight{}, err
			}
			if _, err := c.Decode(ctx, data, cur.sch, &io.in); err != nil {
				return inflight{}, err
			}
		}
		var err error
		if io.out, err = call(fn, io.in); err != nil {
			return inflight{}, &StepError{EventType: eventType, From: from, To: toVersion, Err: err}
		}
		next := inflight{sch: to, ver: toVersion, by: s}
		if outIsMap {
			next.val = any(io.out)
		} else {
			next.val = &io.out
		}
		return next, nil
	}
	c.steps[key] = s
	return nil
}

// RegisterMap is Register for functions on generic values, for steps not worth a struct.
func RegisterMap(c *Chain, eventType string, from int, fn func(map[string]any) (map[string]any, error)) error {
	return Register(c, eventType, from, fn)
}

// call runs fn, turning a panic into an error.
func call[From, To any](fn func(From) (To, error), in From) (out To, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(in)
}

func (c *Chain) step(eventType string, from int) *step {
	if c == nil {
		return nil
	}
	return c.steps[stepKey{eventType, from}]
}

// Step names one registered function.
type Step struct {
	EventType string
	From      int
	In, Out   string // Go type names
}

// Steps lists the registered functions by event type, then version.
func (c *Chain) Steps() []Step {
	var out []Step
	for _, s := range c.steps {
		out = append(out, Step{EventType: s.eventType, From: s.from, In: s.in.String(), Out: s.out.String()})
	}
	slices.SortFunc(out, func(a, b Step) int {
		if n := strings.Compare(a.EventType, b.EventType); n != 0 {
			return n
		}
		return a.From - b.From
	})
	return out
}
