package codec

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/modern-go/reflect2"
)

// maxTyped bounds how many Go types a binding remembers encoders and decoders for; a schema
// is normally used with one or two (a struct and map[string]any).
const maxTyped = 8

// typedEntry is hamba's encoder or decoder for one Go type.
type typedEntry struct {
	rtype uintptr
	enc   avro.ValEncoder
	dec   avro.ValDecoder
}

// typed remembers, for one schema, hamba's compiled encoder and decoder per Go type. hamba's
// Marshal and Unmarshal look them up on every call in a cache keyed by a SHA-256 fingerprint
// of the schema plus the type; a binding serves exactly one schema, so the Go type alone is
// the key and the lookup is a short scan. Writes are copy-on-write under mu.
type typed struct {
	mu   sync.Mutex
	encs atomic.Pointer[[]typedEntry]
	decs atomic.Pointer[[]typedEntry]
}

func lookupTyped(p *[]typedEntry, rt uintptr) *typedEntry {
	if p == nil {
		return nil
	}
	for i := range *p {
		if (*p)[i].rtype == rt {
			return &(*p)[i]
		}
	}
	return nil
}

func (t *typed) store(list *atomic.Pointer[[]typedEntry], e typedEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := list.Load()
	if old != nil && (len(*old) >= maxTyped || lookupTyped(old, e.rtype) != nil) {
		return
	}
	var n []typedEntry
	if old != nil {
		n = slices.Clone(*old)
	}
	n = append(n, e)
	list.Store(&n)
}

// encode writes v with schema s, as hamba's Writer.WriteVal does.
func (b *binding) encode(w *avro.Writer, s avro.Schema, v any) {
	rt := reflect2.RTypeOf(v)
	var enc avro.ValEncoder
	if e := lookupTyped(b.typed.encs.Load(), rt); e != nil {
		enc = e.enc
	} else {
		enc = b.api.EncoderOf(s, reflect2.TypeOf(v))
		b.typed.store(&b.typed.encs, typedEntry{rtype: rt, enc: enc})
	}
	enc.Encode(reflect2.PtrOf(v), w)
}

// errNotPointer is a caller's mistake, not bad data, and wraps no sentinel.
var errNotPointer = errors.New("codec: decode target must be a non-nil pointer")

// decode reads into v with schema s, as hamba's Reader.ReadVal does.
func (b *binding) decode(r *avro.Reader, s avro.Schema, v any) error {
	rt := reflect2.RTypeOf(v)
	var dec avro.ValDecoder
	if e := lookupTyped(b.typed.decs.Load(), rt); e != nil {
		dec = e.dec
	} else {
		typ := reflect2.TypeOf(v)
		if typ == nil || typ.Kind() != reflect.Ptr {
			return errNotPointer
		}
		dec = b.api.DecoderOf(s, typ)
		b.typed.store(&b.typed.decs, typedEntry{rtype: rt, dec: dec})
	}
	ptr := reflect2.PtrOf(v)
	if ptr == nil {
		return errNotPointer
	}
	dec.Decode(ptr, r)
	return nil
}
