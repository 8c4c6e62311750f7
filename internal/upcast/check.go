package upcast

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/compat"
)

// Route maps a registry subject to the event type whose steps apply to it; ok false leaves
// the subject out (it is not an event the caller upcasts).
type Route func(subject string) (eventType string, ok bool)

// Check lists every subject in the registry and, for each that route accepts, checks that
// every registered version has a path to the newest (see CheckSubject). It returns nil, an
// error wrapping ErrGap that joins one *GapError per gap (every gap, not just the first), or a
// transient error wrapping codec.ErrRegistryUnavailable.
func (u *Upcaster) Check(ctx context.Context, route Route) error {
	subjects, err := registryCall(ctx, u.list.GetSubjects)
	if err != nil {
		return classify(err, "list subjects")
	}
	slices.Sort(subjects)
	var gaps []error
	for _, subject := range subjects {
		eventType, ok := route(subject)
		if !ok {
			continue
		}
		err := u.CheckSubject(ctx, subject, eventType)
		switch {
		case err == nil, errors.Is(err, codec.ErrUnknownSubject): // deleted since the listing
		case errors.Is(err, ErrGap):
			gaps = append(gaps, err)
		default:
			return err
		}
	}
	return errors.Join(gaps...)
}

// CheckSubject checks each step between consecutive registered versions of subject: with a
// function registered for the step, that the function's input type encodes with the
// from-version and its output type with the to-version (for struct types, with zero values:
// a required field the struct lacks is a gap); without one, that the from-version resolves
// into the to-version by the Avro specification (internal/compat) and by hamba/avro, which
// decodes at run time. A version the codec cannot use (not Avro, with references) is a gap
// too. Errors as for Check.
func (u *Upcaster) CheckSubject(ctx context.Context, subject, eventType string) error {
	vs, err := listVersions(ctx, u.list, subject)
	if err != nil {
		return err
	}
	st := u.state(subject)
	st.mu.Lock()
	st.versions = vs
	st.mu.Unlock()
	var gaps []error
	gap := func(from, to int, format string, args ...any) {
		gaps = append(gaps, &GapError{Subject: subject, EventType: eventType, From: from, To: to, Reason: fmt.Sprintf(format, args...)})
	}
	schemas := make([]*codec.Schema, len(vs))
	for i, v := range vs {
		s, err := u.codec.Version(ctx, subject, v)
		switch {
		case errors.Is(err, codec.ErrUnsupportedSchema):
			gap(v, 0, "%v", err)
		case err != nil:
			return err
		}
		schemas[i] = s
	}
	for i := 0; i+1 < len(vs); i++ {
		from, to := schemas[i], schemas[i+1]
		if from == nil || to == nil {
			continue // reported above
		}
		if s := u.chain.step(eventType, vs[i]); s != nil {
			if err := u.probe(from, s.in); err != nil {
				gap(vs[i], vs[i+1], "the input type %s of the registered function does not fit version %d: %v", s.in, vs[i], err)
			}
			if err := u.probe(to, s.out); err != nil {
				gap(vs[i], vs[i+1], "the output type %s of the registered function does not fit version %d: %v", s.out, vs[i+1], err)
			}
			continue
		}
		msgs, err := compat.Check(compat.Backward, compat.Schema{Text: to.Text}, []compat.Schema{{Text: from.Text}})
		if err != nil {
			gap(vs[i], vs[i+1], "no upcaster function is registered and the schemas cannot be compared: %v", err)
			continue
		}
		if len(msgs) > 0 {
			for j, m := range msgs {
				msgs[j] = strings.TrimPrefix(m, "backward: new schema cannot read data written by existing[0]: ")
			}
			gap(vs[i], vs[i+1], "no upcaster function is registered and schema resolution fails: %s", strings.Join(msgs, "; "))
			continue
		}
		// A fresh checker per pair: hamba's caches verdicts by canonical form.
		if _, err := avro.NewSchemaCompatibility().Resolve(to.Avro, from.Avro); err != nil {
			gap(vs[i], vs[i+1], "no upcaster function is registered and hamba/avro cannot resolve the schemas: %v", err)
		}
	}
	if len(gaps) == 0 {
		return nil
	}
	return errors.Join(gaps...)
}

// probe encodes the zero value of t with s. Map types are not probed: an empty map says
// nothing about the function.
func (u *Upcaster) probe(s *codec.Schema, t reflect.Type) error {
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if base.Kind() != reflect.Struct {
		return nil
	}
	_, err := u.codec.Encode(s, reflect.New(base).Interface())
	return err
}
