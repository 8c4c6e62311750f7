package codec

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/modern-go/reflect2"
)

// maxTyped bounds how many Go types a binding remembers encoders and decoders for; a schema
// is normally used with one or two (a struct and map[string]any).
const maxTyped = 8

// typedEntry is what a binding compiled for one Go type: hamba's encoder or decoder, and the
// fast path's plan when there is one (see fast.go).
type typedEntry struct {
	rtype   uintptr
	enc     avro.ValEncoder
	dec     avro.ValDecoder
	encPlan *encPlan
	decPlan *decPlan
	mapPlan *mapPlan    // decoding into a *map[string]any (fastmap.go)
	mapEnc  *mapEncPlan // encoding a map[string]any (fastmap.go)
}

// typed remembers, for one schema, hamba's compiled encoder and decoder per Go type. hamba's
// Marshal and Unmarshal look them up on every call in a cache keyed by a SHA-256 fingerprint
// of the schema plus the type; a binding serves exactly one schema, so the Go type alone is
// the key and the lookup is a short scan. Writes are copy-on-write under mu.
type typed struct {
	mu   sync.Mutex
	encs atomic.Pointer[typedList]
	decs atomic.Pointer[typedList]
}

// typedList is an immutable list of entries, held inline so that a lookup reads one object.
type typedList struct {
	n int
	e [maxTyped]typedEntry
}

func lookupTyped(p *typedList, rt uintptr) *typedEntry {
	if p == nil {
		return nil
	}
	for i := range p.e[:p.n] {
		if p.e[i].rtype == rt {
			return &p.e[i]
		}
	}
	return nil
}

// store adds e unless the list is full or has the type already, and returns the entry kept
// (e itself when the list is full).
func (t *typed) store(list *atomic.Pointer[typedList], e typedEntry) *typedEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := list.Load()
	if have := lookupTyped(old, e.rtype); have != nil {
		return have
	}
	n := &typedList{}
	if old != nil {
		*n = *old
	}
	if n.n == maxTyped {
		return &e
	}
	n.e[n.n] = e
	n.n++
	list.Store(n)
	return &n.e[n.n-1]
}

// encoderOf returns the compiled encoders of v's type for schema s.
func (b *binding) encoderOf(s avro.Schema, v any) *typedEntry {
	rt := reflect2.RTypeOf(v)
	if e := lookupTyped(b.typed.encs.Load(), rt); e != nil {
		return e
	}
	e := typedEntry{
		rtype:   rt,
		enc:     b.api.EncoderOf(s, reflect2.TypeOf(v)),
		encPlan: compileEncoder(b.api, s, reflect.TypeOf(v)),
	}
	if _, ok := v.(map[string]any); ok {
		e.mapEnc = compileMapEncoder(b.api, s)
	}
	return b.typed.store(&b.typed.encs, e)
}

// encode writes v with schema s, as hamba's Writer.WriteVal does.
func (b *binding) encode(w *avro.Writer, s avro.Schema, v any) {
	b.encoderOf(s, v).enc.Encode(reflect2.PtrOf(v), w)
}

// errNotPointer is a caller's mistake, not bad data, and wraps no sentinel.
var errNotPointer = errors.New("codec: decode target must be a non-nil pointer")

// decoderOf returns the compiled decoders of v's type for schema s (the writer's schema, or
// the resolution of it into the reader's). The fast path compiles from b.writer and
// b.reader, the two schemas s was made of.
func (b *binding) decoderOf(s avro.Schema, v any) (*typedEntry, error) {
	rt := reflect2.RTypeOf(v)
	if e := lookupTyped(b.typed.decs.Load(), rt); e != nil {
		return e, nil
	}
	typ := reflect2.TypeOf(v)
	if typ == nil || typ.Kind() != reflect.Ptr {
		return nil, errNotPointer
	}
	e := typedEntry{
		rtype:   rt,
		dec:     b.api.DecoderOf(s, typ),
		decPlan: compileDecoder(b.api, b.writer, b.reader, reflect.TypeOf(v)),
	}
	if reflect.TypeOf(v) == mapType {
		e.mapPlan = compileMapDecoder(b.api, b.writer, b.reader)
	}
	return b.typed.store(&b.typed.decs, e), nil
}

// decode reads into v with schema s, as hamba's Reader.ReadVal does.
func (b *binding) decode(r *avro.Reader, s avro.Schema, v any) error {
	e, err := b.decoderOf(s, v)
	if err != nil {
		return err
	}
	ptr := reflect2.PtrOf(v)
	if ptr == nil {
		return errNotPointer
	}
	e.dec.Decode(ptr, r)
	return nil
}

// decodeFast decodes body into v by the fast path (strings copied into arena) and reports
// whether it did; false leaves the call (and its error, if any) to hamba.
func (b *binding) decodeFast(s avro.Schema, body []byte, v any, arena *outArena) bool {
	e, err := b.decoderOf(s, v)
	if err != nil {
		return false
	}
	if e.mapPlan != nil {
		m, _ := v.(*map[string]any)
		return m != nil && e.mapPlan.decode(body, m, arena)
	}
	if e.decPlan == nil {
		return false
	}
	ptr := reflect2.PtrOf(v)
	return ptr != nil && e.decPlan.decode(body, ptr, arena)
}
