package upcast

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Lister lists what the registry holds. *srclient.SchemaRegistryClient satisfies it (with its
// cache off, as for codec.Registry). Errors are classified like the codec's: Confluent codes
// 40401/40402 mean gone, anything else without an answer means unavailable.
type Lister interface {
	GetSubjects() ([]string, error)
	GetSchemaVersions(subject string) ([]int, error)
}

// Upcaster carries values to the newest version of their type. Create it with New.
type Upcaster struct {
	codec *codec.Codec
	chain *Chain
	list  Lister
	// validate makes Upcast decode values it passes on unchanged.
	validate bool

	idVersion sync.Map // int (schema id) -> int (version under the record's subject)
	subjects  sync.Map // string -> *subjectState
	plans     sync.Map // planKey -> []planStep
}

// subjectState is what an Upcaster remembers about one subject.
type subjectState struct {
	mu       sync.Mutex
	versions []int // registered versions, ascending, as last listed
	floor    atomic.Int64
}

// Option configures New.
type Option func(*Upcaster)

// WithoutValidation makes Upcast pass values already at the output version on without
// decoding them. By default they are decoded, so a body that does not fit its schema is
// reported (codec.ErrInvalidData) instead of being passed on.
func WithoutValidation() Option { return func(u *Upcaster) { u.validate = false } }

// New returns an Upcaster applying chain (nil: every step by schema resolution), with schemas
// from c and listings from list.
func New(c *codec.Codec, chain *Chain, list Lister, opts ...Option) *Upcaster {
	u := &Upcaster{codec: c, chain: chain, list: list, validate: true}
	for _, o := range opts {
		o(u)
	}
	return u
}

// Version locates one schema version.
type Version struct {
	ID      int // global schema ID
	Version int // version under the subject
}

// Writer is the schema a value was written with.
type Writer struct {
	Schema  *codec.Schema
	Subject string // the record's full name: its subject under RecordNameStrategy
	Version
}

// Prefixed returns a raw value in the prefix framing WriterOf and Upcast take: as it is when
// the record has no __value_schema_id header (hasHeader false), else the bare body behind
// the id the header names (see codec.Codec.Prefixed for the errors).
func (u *Upcaster) Prefixed(ctx context.Context, value, header []byte, hasHeader bool) ([]byte, error) {
	return u.codec.Prefixed(ctx, value, header, hasHeader)
}

// WriterOf reads a framed value's schema ID and finds the schema and its version under the
// record's subject. Errors: ErrNotFramed; codec.ErrUnknownSchemaID (the registry does not know
// the ID); codec.ErrUnsupportedSchema (not an Avro record this codec handles);
// codec.ErrUnknownSubject (the schema is not registered under its record's full name);
// codec.ErrRegistryUnavailable (transient).
func (u *Upcaster) WriterOf(ctx context.Context, value []byte) (Writer, error) {
	id, _, err := codec.SplitFrame(value)
	if err != nil {
		return Writer{}, fmt.Errorf("%w: %w", ErrNotFramed, err)
	}
	s, err := u.codec.ByID(ctx, id)
	if err != nil {
		return Writer{}, err
	}
	rec, ok := s.Avro.(*avro.RecordSchema)
	if !ok {
		return Writer{}, fmt.Errorf("%w: schema id %d is a %s, not a record", codec.ErrUnsupportedSchema, id, s.Avro.Type())
	}
	w := Writer{Schema: s, Subject: rec.FullName(), Version: Version{ID: id}}
	if s.Subject == w.Subject && s.Version > 0 {
		w.Version.Version = s.Version
		return w, nil
	}
	if w.Version.Version, err = u.versionOf(ctx, w.Subject, id); err != nil {
		return Writer{}, err
	}
	return w, nil
}

// versionOf finds the version of subject registered with schema id.
func (u *Upcaster) versionOf(ctx context.Context, subject string, id int) (int, error) {
	if v, ok := u.idVersion.Load(id); ok {
		return v.(int), nil
	}
	st := u.state(subject)
	vs, err := st.list(ctx, u, subject, 0)
	if err != nil {
		return 0, err
	}
	for _, v := range slices.Backward(vs) {
		s, err := u.codec.Version(ctx, subject, v)
		if errors.Is(err, codec.ErrUnknownSubject) {
			continue // deleted since the listing
		}
		if err != nil {
			return 0, err
		}
		if s.ID == id {
			u.idVersion.Store(id, v)
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: schema id %d is not registered under subject %s", codec.ErrUnknownSubject, id, subject)
}

func (u *Upcaster) state(subject string) *subjectState {
	if st, ok := u.subjects.Load(subject); ok {
		return st.(*subjectState)
	}
	st, _ := u.subjects.LoadOrStore(subject, &subjectState{})
	return st.(*subjectState)
}

// list returns the subject's versions, listing them again when need (if not 0) is missing.
func (st *subjectState) list(ctx context.Context, u *Upcaster, subject string, need int) ([]int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.versions != nil && (need == 0 || slices.Contains(st.versions, need)) {
		return st.versions, nil
	}
	vs, err := listVersions(ctx, u.list, subject)
	if err != nil {
		return nil, err
	}
	st.versions = vs
	return vs, nil
}

// raiseFloor records that v was written for the subject and returns the floor.
func (st *subjectState) raiseFloor(v int) {
	for {
		cur := st.floor.Load()
		if int64(v) <= cur || st.floor.CompareAndSwap(cur, int64(v)) {
			return
		}
	}
}

// Result is an upcast value.
type Result struct {
	// Value is the value framed at To: appended to the dst given to Upcast or, when the
	// version does not change, the input value itself.
	Value    []byte
	From, To Version
}

// Upcast carries value, written with w (from WriterOf), to the output version of w.Subject
// (see the package doc) along the steps of eventType, appending the framed result to dst.
//
// Errors: ErrNoPath (a step without a function does not resolve); a *StepError (a function
// failed, or its output does not fit the next version); codec.ErrInvalidData (the body does
// not fit its schema); codec.ErrUnknownSubject (the subject is gone); and
// codec.ErrRegistryUnavailable (transient: the same call may succeed later).
func (u *Upcaster) Upcast(ctx context.Context, eventType string, w Writer, value, dst []byte) (Result, error) {
	res := Result{From: w.Version, To: w.Version}
	target, err := u.target(ctx, w)
	if err != nil {
		return res, err
	}
	if target.Version == w.Version.Version {
		if u.validate {
			// Decoding into an empty struct skips every field: it checks the body's shape
			// (lengths, union branches, no trailing bytes) without building a value.
			var skip struct{}
			if _, err := u.codec.Decode(ctx, value, nil, &skip); err != nil {
				return res, err
			}
		}
		res.Value = value
		return res, nil
	}
	steps, err := u.plan(ctx, eventType, w, target)
	if err != nil {
		return res, err
	}
	cur := inflight{sch: w.Schema, ver: w.Version.Version, framed: value}
	for _, ps := range steps {
		if cur, err = u.stepOnce(ctx, w.Subject, ps, cur); err != nil {
			return res, err
		}
	}
	out, err := u.codec.AppendEncode(dst, cur.sch, cur.val)
	if err != nil {
		if cur.by != nil {
			return res, cur.by.outputError(cur.ver, err)
		}
		return res, err
	}
	res.Value, res.To = out, target
	return res, nil
}

// planKey names the steps from one schema to another for one event type.
type planKey struct {
	from, to  int // schema IDs
	eventType string
}

// planStep is one step of a plan: to version ver, whose schema is to, by fn or (nil) by
// schema resolution.
type planStep struct {
	ver int
	to  *codec.Schema
	fn  *step
}

// plan returns the steps from w to target, working them out from the subject's registered
// versions the first time a (writer, target) pair is seen.
func (u *Upcaster) plan(ctx context.Context, eventType string, w Writer, target Version) ([]planStep, error) {
	key := planKey{w.Version.ID, target.ID, eventType}
	if p, ok := u.plans.Load(key); ok {
		return p.([]planStep), nil
	}
	st := u.state(w.Subject)
	vs, err := st.list(ctx, u, w.Subject, w.Version.Version)
	if err == nil && !slices.Contains(vs, target.Version) {
		vs, err = st.list(ctx, u, w.Subject, target.Version)
	}
	if err != nil {
		return nil, err
	}
	var steps []planStep
	from := w.Version.Version
	for _, next := range vs {
		if next <= from {
			continue
		}
		if next > target.Version {
			break
		}
		to, err := u.codec.Version(ctx, w.Subject, next)
		if err != nil {
			return nil, err
		}
		steps = append(steps, planStep{ver: next, to: to, fn: u.chain.step(eventType, from)})
		from = next
	}
	u.plans.Store(key, steps)
	return steps, nil
}

// stepOnce carries cur one step.
func (u *Upcaster) stepOnce(ctx context.Context, subject string, ps planStep, cur inflight) (inflight, error) {
	to, toVersion := ps.to, ps.ver
	if ps.fn != nil {
		return ps.fn.apply(ctx, u.codec, cur, to, toVersion)
	}
	data, err := cur.bytes(u.codec)
	if err != nil {
		return inflight{}, err
	}
	m := map[string]any{}
	if _, err := u.codec.Decode(ctx, data, to, &m); err != nil {
		if errors.Is(err, codec.ErrIncompatible) {
			return inflight{}, fmt.Errorf("%w: %s version %d to %d has no upcaster function and does not resolve: %w",
				ErrNoPath, subject, cur.ver, toVersion, err)
		}
		return inflight{}, err
	}
	return inflight{sch: to, ver: toVersion, val: m}, nil
}

// target picks the output version for a value written with w and raises the subject's floor.
func (u *Upcaster) target(ctx context.Context, w Writer) (Version, error) {
	latest, err := u.codec.Latest(ctx, w.Subject)
	if err != nil {
		return Version{}, err
	}
	lv := latest.Version
	if lv == 0 {
		if lv, err = u.versionOf(ctx, w.Subject, latest.ID); err != nil {
			return Version{}, err
		}
	}
	st := u.state(w.Subject)
	tv := max(lv, w.Version.Version, int(st.floor.Load()))
	st.raiseFloor(tv)
	switch tv {
	case w.Version.Version:
		return w.Version, nil
	case lv:
		return Version{ID: latest.ID, Version: lv}, nil
	}
	s, err := u.codec.Version(ctx, w.Subject, tv)
	if err != nil {
		return Version{}, err
	}
	return Version{ID: s.ID, Version: tv}, nil
}

// listVersions asks the registry for a subject's versions, ascending.
func listVersions(ctx context.Context, l Lister, subject string) ([]int, error) {
	vs, err := registryCall(ctx, func() ([]int, error) { return l.GetSchemaVersions(subject) })
	if err != nil {
		return nil, classify(err, "versions of "+subject)
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	return vs, nil
}

// registryCall runs fn and waits for it as long as ctx allows (fn itself runs on).
func registryCall[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

// classify maps a listing error: Confluent 404 codes to codec.ErrUnknownSubject, anything
// else to codec.ErrRegistryUnavailable.
func classify(err error, what string) error {
	var se srclient.Error
	var sep *srclient.Error
	code := 0
	switch {
	case errors.As(err, &se):
		code = se.Code
	case errors.As(err, &sep) && sep != nil:
		code = sep.Code
	}
	if code == 40401 || code == 40402 || code == 404 {
		return fmt.Errorf("%w: %s: %v", codec.ErrUnknownSubject, what, err)
	}
	return fmt.Errorf("%w: %s: %w", codec.ErrRegistryUnavailable, what, err)
}
