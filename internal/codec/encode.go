package codec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"unsafe"

	"github.com/hamba/avro/v2"
	"github.com/modern-go/reflect2"
)

// Encode returns v as a Confluent-framed value: 0x00, s.ID big-endian, the Avro body. v is a
// Go struct (or pointer to one) with `avro:"name"` tags, or a map[string]any such as FromJSON
// returns; time.Time encodes timestamp-millis. A record field missing from v takes its schema
// default; one without a default is an error. Keys of a map that are not fields are ignored.
// A value that does not fit wraps ErrInvalidData: a map[string]any is checked field by field
// first and the error is a *FieldErrors naming every field at fault. Struct fields are encoded
// as hamba/avro does, which truncates a Go int beyond 32 bits into an Avro int: use int32
// fields, or values in range.
//
// The result is the caller's, with its capacity equal to its length. A result of up to 128
// bytes is a piece of a 4 KiB chunk shared with other results (no two share a byte), which
// stays in memory while any of its results does.
func (c *Codec) Encode(s *Schema, v any) ([]byte, error) {
	if p, ptr, mp := c.fastPlan(s, v); p != nil || mp != nil {
		var scratch [arenaMaxPiece - HeaderSize]byte // on the stack unless the body outgrows it
		var body []byte
		ok := false
		if p != nil {
			body, ok = p.appendBody(scratch[:0], ptr)
		} else {
			body, ok = mp.appendBody(scratch[:0], v.(map[string]any))
		}
		if ok {
			out := c.out.alloc(HeaderSize + len(body))
			putHeader(out, s.ID)
			copy(out[HeaderSize:], body)
			return out, nil
		}
	}
	if err := checkEncodeSchema(s); err != nil {
		return nil, err
	}
	w, err := c.encodeBody(s, v)
	if err != nil {
		return nil, err
	}
	body := w.Buffer()
	out := c.out.alloc(HeaderSize + len(body))
	putHeader(out, s.ID)
	copy(out[HeaderSize:], body)
	c.putWriter(s, w)
	return out, nil
}

// AppendEncode is Encode appending to dst; with a dst of enough capacity it does not allocate
// (for flat records of strings, numbers and timestamps). On error dst is returned unchanged.
func (c *Codec) AppendEncode(dst []byte, s *Schema, v any) ([]byte, error) {
	if p, ptr, mp := c.fastPlan(s, v); p != nil {
		if out, ok := p.appendBody(AppendHeader(dst, s.ID), ptr); ok {
			return out, nil
		}
	} else if mp != nil {
		if out, ok := mp.appendBody(AppendHeader(dst, s.ID), v.(map[string]any)); ok {
			return out, nil
		}
	}
	if err := checkEncodeSchema(s); err != nil {
		return dst, err
	}
	w, err := c.encodeBody(s, v)
	if err != nil {
		return dst, err
	}
	dst = append(AppendHeader(dst, s.ID), w.Buffer()...)
	c.putWriter(s, w)
	return dst, nil
}

// fastPlan returns the fast path's plan for encoding v with s (see fast.go) and the address
// of the struct, or for a map the map plan (fastmap.go), or nils for values that go through
// hamba.
func (c *Codec) fastPlan(s *Schema, v any) (*encPlan, unsafe.Pointer, *mapEncPlan) {
	if s == nil || s.Avro == nil || uint64(s.ID) > 1<<32-1 {
		return nil, nil, nil // checkEncodeSchema reports it
	}
	b := s.bind
	if b == nil {
		b = c.bindingOf(s)
	}
	e := lookupTyped(b.typed.encs.Load(), reflect2.RTypeOf(v))
	if e == nil {
		e = b.encoderOf(s.Avro, v)
	}
	if e.mapEnc != nil {
		return nil, nil, e.mapEnc
	}
	ptr := reflect2.PtrOf(v)
	if e.encPlan == nil || ptr == nil { // a nil *T: hamba reports it
		return nil, nil, nil
	}
	return e.encPlan, ptr, nil
}

func checkEncodeSchema(s *Schema) error {
	if s == nil || s.Avro == nil {
		return errors.New("codec: encode: nil schema")
	}
	if s.ID < 0 || int64(s.ID) > 1<<32-1 {
		return fmt.Errorf("codec: encode: schema id %d does not fit the 4-byte header", s.ID)
	}
	return nil
}

func (c *Codec) encodeBody(s *Schema, v any) (*avro.Writer, error) {
	if m, ok := v.(map[string]any); ok {
		// hamba truncates an out-of-range Go int into an Avro int silently; generic values are
		// checked first (structs are the caller's types and are not).
		if fes := validate(s.Avro, m, ""); len(fes) > 0 {
			return nil, &fes
		}
	}
	b := c.bindingOf(s)
	w := b.writers.Get().(*avro.Writer)
	w.Reset(nil)
	b.encode(w, s.Avro, v)
	if err := w.Error; err != nil {
		w.Error = nil
		b.writers.Put(w)
		return nil, fmt.Errorf("%w: encode %s: %v", ErrInvalidData, s.Subject, err)
	}
	return w, nil
}

func (c *Codec) putWriter(s *Schema, w *avro.Writer) {
	w.Reset(nil)
	c.bindingOf(s).writers.Put(w)
}

// bindingOf returns the hamba API a Schema encodes and decodes with. Schemas from a Codec or
// NewSchema carry one; a Schema built as a literal gets one on first use, kept for the
// Codec's life.
func (c *Codec) bindingOf(s *Schema) *binding {
	if s.bind != nil {
		return s.bind
	}
	if b, ok := c.adhoc.Load(s); ok {
		return b.(*binding)
	}
	b, _ := c.adhoc.LoadOrStore(s, newBinding(s.Avro, s.Avro))
	return b.(*binding)
}

// resolution is the schema to decode a writer's data into a reader's shape with, or why
// there is none.
type resolution struct {
	reader *Schema
	schema avro.Schema
	bind   *binding
	err    error
}

// Decode decodes a Confluent-framed value into v, which must be a non-nil pointer (to a
// struct with avro tags, a map[string]any, or any). The writer schema is looked up by the
// frame's ID (cached; see ByID) and returned. With a nil reader the value is decoded as
// written; otherwise it is resolved into reader by Avro schema resolution: writer fields the
// reader lacks are skipped, reader fields the writer lacks get their defaults, and an
// incompatible pair wraps ErrIncompatible. A body that is truncated, has trailing bytes, or
// otherwise does not fit the writer schema wraps ErrInvalidData (fields the reader skips are
// checked only as far as hamba/avro's skipping checks them). On error v may have been partly
// written.
//
// Each writer/reader pair is resolved once and kept for the Codec's life, keyed by the two
// *Schema values: pass a long-lived reader (from the Codec, or one NewSchema result), not a
// new Schema per call. Decode is safe for concurrent use.
func (c *Codec) Decode(ctx context.Context, data []byte, reader *Schema, v any) (writer *Schema, err error) {
	id, body, err := SplitFrame(data)
	if err != nil {
		return nil, err
	}
	w, err := c.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	sch, b := w.Avro, w.bind
	if reader != nil && reader != w && (reader.ID <= 0 || reader.ID != w.ID) {
		r, err := c.resolve(w, reader)
		if err != nil {
			return w, err
		}
		sch, b = r.schema, r.bind
	}
	if err := decodeBody(b, sch, body, v, &c.out); err != nil {
		if errors.Is(err, errNotPointer) {
			return w, err
		}
		return w, fmt.Errorf("%w: decode %s (schema id %d): %v", ErrInvalidData, w.Subject, w.ID, err)
	}
	return w, nil
}

// resolve returns the resolution of w's data into r, computing it once per pair (kept in w's
// binding; a writer comes from ByID and so always has one).
func (c *Codec) resolve(w, r *Schema) (*resolution, error) {
	if p := w.bind.resolutions.Load(); p != nil {
		for i := range *p {
			if (*p)[i].reader == r {
				return &(*p)[i], (*p)[i].err
			}
		}
	}
	// A fresh checker per pair: hamba's checker caches verdicts by canonical-form
	// fingerprints, which ignore defaults and aliases.
	res := resolution{reader: r}
	s, err := avro.NewSchemaCompatibility().Resolve(r.Avro, w.Avro)
	if err != nil {
		res.err = fmt.Errorf("%w: writer %s (id %d) as reader %s (id %d): %v",
			ErrIncompatible, w.Subject, w.ID, r.Subject, r.ID, err)
	} else {
		res.schema, res.bind = s, newBinding(w.Avro, r.Avro)
	}
	w.bind.resMu.Lock()
	defer w.bind.resMu.Unlock()
	var n []resolution
	if old := w.bind.resolutions.Load(); old != nil {
		for i := range *old {
			if (*old)[i].reader == r {
				return &(*old)[i], (*old)[i].err
			}
		}
		n = slices.Clone(*old)
	}
	n = append(n, res)
	w.bind.resolutions.Store(&n)
	return &n[len(n)-1], res.err
}

// decodeBody decodes body into v by the fast path when it can (see fast.go), else, and
// whenever the fast path fails, by hamba, whose errors are the ones returned. The fast path
// copies strings into pieces of arena.
func decodeBody(b *binding, s avro.Schema, body []byte, v any, arena *outArena) error {
	if b.decodeFast(s, body, v, arena) {
		return nil
	}
	return decodeHamba(b, s, body, v)
}

// decodeHamba decodes body into v with hamba: the whole body, nothing after it.
func decodeHamba(b *binding, s avro.Schema, body []byte, v any) error {
	r := b.readers.Get().(*avro.Reader)
	defer func() {
		r.Error = nil
		r.Reset(nil)
		b.readers.Put(r)
	}()
	r.Reset(body)
	if err := b.decode(r, s, v); err != nil {
		return err
	}
	if r.Error != nil {
		if errors.Is(r.Error, io.EOF) || errors.Is(r.Error, io.ErrUnexpectedEOF) {
			return fmt.Errorf("truncated body: %w", r.Error)
		}
		return r.Error
	}
	r.Peek()
	if r.Error == nil {
		return errors.New("trailing bytes after the record")
	}
	return nil
}
