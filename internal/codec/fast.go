package codec

// This file holds the codec's fast path: for one (schema, Go struct type) pair it compiles,
// once, a flat list of field operations that encode a struct straight into an append buffer
// and decode a body straight into a struct, without hamba/avro's per-field interface calls,
// Reader/Writer pools or error wrapping.
//
// The fast path is an optimisation only. It must produce exactly what hamba/avro produces for
// the same schema and Go type, so it compiles only for the pairs whose hamba behaviour it
// mirrors (listed at compileEncoder and decOpFor) and returns no plan for every other pair,
// which then goes through hamba as before. At run time any failure of the fast path (a value
// that does not fit, a body that is truncated, has trailing bytes or is otherwise invalid)
// hands the whole call back to hamba, so error values and messages are hamba's.
//
// All of the package's unsafe field access is here: field operations address struct fields
// by offsets taken from reflect at compile time, as hamba (through reflect2) does.
// Every offset comes from reflect.StructField.Offset of the compiled type, and a plan is only
// ever run on a pointer to a value of the exact type it was compiled for (plans are kept per
// reflect type, see typed.go); decoding checks every length against the body before reading.

import (
	"encoding"
	"encoding/binary"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/hamba/avro/v2"
	"github.com/modern-go/reflect2"
)

// opKind is what one field operation does.
type opKind uint8

const (
	opBool       opKind = iota // Avro boolean <-> bool
	opInt                      // Avro int <-> an integer field (see intKind), truncated to 32 bits on encode
	opLong                     // Avro long <-> an integer field (see intKind)
	opInt64                    // opInt on a 64-bit int field, the common case, without intKind
	opInt32                    // opInt on an int32 field
	opLong64                   // opLong on a 64-bit int or int64 field
	opFloat                    // Avro float <-> float32
	opDouble                   // Avro double <-> float64
	opDoubleOf32               // encode only: a float32 field as Avro double
	opString                   // Avro string <-> a string-kinded field
	opBytes                    // Avro bytes <-> a []byte-shaped field
	opEnum                     // Avro enum <-> a string-kinded field holding the symbol
	opTimeMillis               // timestamp-millis long <-> time.Time
	opTimeMicros               // timestamp-micros long <-> time.Time
	opNullable                 // a two-branch union with null <-> a pointer (nil is null)
	opConst                    // encode only: the schema default of a field the struct lacks
	opDefault                  // decode only: the reader default of a field the writer lacks
	opSkip                     // decode only: a written field the struct or the reader lacks
)

// intKind is the Go storage of an integer field.
type intKind uint8

const (
	ikInt intKind = iota
	ikInt8
	ikInt16
	ikInt32
	ikInt64
	ikUint8
	ikUint16
	ikUint32
)

// fieldOp is one step of a plan, applied at off bytes from the start of the struct. It is
// kept small (24 bytes) for the hot loops; what only some kinds need is in opExtra.
type fieldOp struct {
	off  uintptr
	kind opKind
	ik   intKind
	// opNullable: the branch indexes (0 or 1) of null and of the value.
	nullIdx, valIdx uint8
	*opExtra
}

// opExtra holds the parts of an operation that only some kinds have.
type opExtra struct {
	// opEnum: the symbols, by index.
	symbols []string
	// opNullable: the operation on the pointee (at offset 0 of it).
	elem *fieldOp
	// opNullable: the pointee type, allocated when decoding a value into a nil pointer.
	elemType reflect.Type
	// opConst: the bytes written; opDefault: the encoded default that defOps read.
	def []byte
	// opDefault: the operation reading def into the field, at offset 0 of it.
	defOps []fieldOp
	// opSkip: what to skip.
	skip *skipNode
}

// encPlan encodes one struct type with one schema.
type encPlan struct {
	ops []fieldOp
	// fixedMax bounds the bytes the plan writes besides the contents of its strings and
	// bytes values.
	fixedMax int
}

// decPlan decodes data written with one schema into one struct type, resolved into a
// reader schema when that differs.
type decPlan struct {
	ops []fieldOp
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	durationType        = reflect.TypeFor[time.Duration]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	unionConverterType  = reflect.TypeFor[avro.UnionConverter]()
)

// goField is a struct field as hamba finds it for a record field name (describeStruct in
// hamba's codec_record.go): exported fields, named by their avro tag up to a comma or by
// their Go name, with embedded structs flattened breadth first.
type goField struct {
	name string
	off  uintptr
	typ  reflect.Type
	// viaPtr is set when the field sits in an embedded struct reached through a pointer;
	// the plans do not follow those.
	viaPtr bool
}

func describeStruct(t reflect.Type) []goField {
	type level struct {
		t      reflect.Type
		off    uintptr
		viaPtr bool
	}
	var fields []goField
	next := []level{{t: t}}
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		curr := next
		next = nil
		for _, l := range curr {
			if visited[l.t] {
				continue
			}
			visited[l.t] = true
			for i := range l.t.NumField() {
				f := l.t.Field(i)
				if f.Anonymous {
					ft, ptr := f.Type, false
					if ft.Kind() == reflect.Pointer {
						ft, ptr = ft.Elem(), true
					}
					if ft.Kind() == reflect.Struct {
						next = append(next, level{t: ft, off: l.off + f.Offset, viaPtr: l.viaPtr || ptr})
					}
					continue
				}
				if !f.IsExported() {
					continue
				}
				name := f.Name
				if tag, ok := f.Tag.Lookup("avro"); ok {
					name, _, _ = strings.Cut(tag, ",")
				}
				fields = append(fields, goField{name: name, off: l.off + f.Offset, typ: f.Type, viaPtr: l.viaPtr})
			}
		}
	}
	return fields
}

func findField(fields []goField, name string) *goField {
	for i := range fields {
		if fields[i].name == name {
			return &fields[i]
		}
	}
	return nil
}

// findFieldOrAlias looks a field up by name, then by each alias, as hamba's struct decoder
// does.
func findFieldOrAlias(fields []goField, f *avro.Field) *goField {
	if gf := findField(fields, f.Name()); gf != nil {
		return gf
	}
	for _, a := range f.Aliases() {
		if gf := findField(fields, a); gf != nil {
			return gf
		}
	}
	return nil
}

func deref(s avro.Schema) avro.Schema {
	for {
		r, ok := s.(*avro.RefSchema)
		if !ok {
			return s
		}
		s = r.Schema()
	}
}

// structOf returns the struct type a top-level value of type t is encoded from or decoded
// into: t itself for encoding a struct value that is not pointer-shaped (the interface then
// holds a pointer to it), or t's element for a pointer to a struct.
func structOf(t reflect.Type, decoding bool) reflect.Type {
	switch {
	case t == nil:
		return nil
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		return t.Elem()
	case !decoding && t.Kind() == reflect.Struct && !reflect2.Type2(t).LikePtr():
		return t
	}
	return nil
}

// compileEncoder returns the plan for encoding values of type t (a struct or a pointer to
// one) with the record schema s, or nil when the pair is left to hamba. Every record field
// must be a struct field (not behind an embedded pointer) whose operation encOpFor knows, or
// be missing from the struct with a default that hamba encodes to fixed bytes.
func compileEncoder(api avro.API, s avro.Schema, t reflect.Type) *encPlan {
	st := structOf(t, false)
	rec, ok := s.(*avro.RecordSchema)
	if st == nil || !ok {
		return nil
	}
	fields := describeStruct(st)
	p := &encPlan{}
	for _, f := range rec.Fields() {
		gf := findField(fields, f.Name())
		if gf == nil {
			def, ok := encodedDefault(api, f)
			if !ok {
				return nil
			}
			if len(def) > 0 {
				p.ops = append(p.ops, fieldOp{kind: opConst, opExtra: &opExtra{def: def}})
			}
			continue
		}
		if gf.viaPtr {
			return nil
		}
		op, ok := encOpFor(f.Type(), gf.typ)
		if !ok {
			return nil
		}
		op.off = gf.off
		p.ops = append(p.ops, op)
	}
	for _, op := range p.ops {
		if op.kind == opNullable {
			p.fixedMax += maxVarint32
			op = *op.elem
		}
		p.fixedMax += maxSize(&op)
	}
	return p
}

// encodedDefault returns the bytes hamba's struct encoder writes for a record field the
// struct lacks, or false when hamba would fail (no default) or the pair is left to it.
func encodedDefault(api avro.API, f *avro.Field) ([]byte, bool) {
	if !f.HasDefault() {
		return nil, false
	}
	def := f.Default()
	if def == nil {
		switch ft := f.Type(); {
		case ft.Type() == avro.Null:
			return nil, true
		case ft.Type() == avro.Union && ft.(*avro.UnionSchema).Nullable():
			null, _ := ft.(*avro.UnionSchema).Indices()
			return appendInt(nil, int32(null)), true
		default:
			return nil, false
		}
	}
	b, err := api.Marshal(f.Type(), def)
	if err != nil {
		return nil, false
	}
	return b, true
}

// isMarshaler reports whether t or *t implements encoding.TextMarshaler or TextUnmarshaler.
// hamba encodes such types through those methods for an Avro string (depending on which
// one); the fast path leaves them all to it.
func isMarshaler(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(textMarshalerType) || t.Implements(textUnmarshalerType) ||
		pt.Implements(textMarshalerType) || pt.Implements(textUnmarshalerType)
}

func intKindOf(k reflect.Kind) (intKind, bool) {
	switch k {
	case reflect.Int:
		if bits.UintSize != 64 {
			return 0, false
		}
		return ikInt, true
	case reflect.Int8:
		return ikInt8, true
	case reflect.Int16:
		return ikInt16, true
	case reflect.Int32:
		return ikInt32, true
	case reflect.Int64:
		return ikInt64, true
	case reflect.Uint8:
		return ikUint8, true
	case reflect.Uint16:
		return ikUint16, true
	case reflect.Uint32:
		return ikUint32, true
	}
	return 0, false
}

// specialise turns the integer operations on the common field types into their own kinds.
func specialise(op fieldOp) fieldOp {
	switch {
	case op.kind == opInt && op.ik == ikInt:
		op.kind = opInt64
	case op.kind == opInt && op.ik == ikInt32:
		op.kind = opInt32
	case op.kind == opLong && (op.ik == ikInt || op.ik == ikInt64):
		op.kind = opLong64
	}
	return op
}

func logicalOfSchema(s avro.Schema) avro.LogicalType {
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		return ls.Logical().Type()
	}
	return ""
}

// encOpFor returns the operation encoding a Go field of type t with schema s, mirroring
// hamba's createEncoderOfNative, createEncoderOfEnum and encoderOfNullableUnion for:
//   - boolean from bool;
//   - int from int, int8, int16, int32, uint8, uint16 (truncated to 32 bits, as hamba does);
//   - long from int, int32, uint32 and int64 (not a time.Duration for a timestamp, not
//     time-micros), a timestamp-millis or -micros long also from time.Time;
//   - float from float32; double from float64 and float32;
//   - string from a string kind that is not a text marshaler; bytes from a []byte shape;
//   - an enum from a string kind;
//   - a union of null and one of the above from a pointer to its Go type.
//
// Anything else (records, arrays, maps, fixed, decimals as big.Rat, dates, other unions,
// interfaces, text marshalers) has no operation.
func encOpFor(s avro.Schema, t reflect.Type) (fieldOp, bool) {
	return opFor(s, t, false, true)
}

// decOpFor is encOpFor for decoding, mirroring hamba's createDecoderOfNative,
// createDecoderOfEnum and decoderOfNullableUnion; it differs in that an Avro long does not
// decode into an int32 and an Avro double not into a float32 (hamba refuses both).
func decOpFor(s avro.Schema, t reflect.Type) (fieldOp, bool) {
	return opFor(s, t, true, true)
}

func opFor(s avro.Schema, t reflect.Type, decoding, unionOK bool) (fieldOp, bool) {
	s = deref(s)
	k := t.Kind()
	switch s.Type() {
	case avro.Boolean:
		if k == reflect.Bool {
			return fieldOp{kind: opBool}, true
		}
	case avro.Int:
		switch k {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
			ik, ok := intKindOf(k)
			return specialise(fieldOp{kind: opInt, ik: ik}), ok
		}
	case avro.Long:
		lt := logicalOfSchema(s)
		switch k {
		case reflect.Int, reflect.Uint32:
			ik, ok := intKindOf(k)
			return specialise(fieldOp{kind: opLong, ik: ik}), ok
		case reflect.Int32:
			if !decoding {
				return fieldOp{kind: opLong, ik: ikInt32}, true
			}
		case reflect.Int64:
			isTimestamp := lt == avro.TimestampMillis || lt == avro.TimestampMicros
			if lt != avro.TimeMicros && !(isTimestamp && t == durationType) {
				return specialise(fieldOp{kind: opLong, ik: ikInt64}), true
			}
		case reflect.Struct:
			switch {
			case t == timeType && lt == avro.TimestampMillis:
				return fieldOp{kind: opTimeMillis}, true
			case t == timeType && lt == avro.TimestampMicros:
				return fieldOp{kind: opTimeMicros}, true
			}
		}
	case avro.Float:
		if k == reflect.Float32 {
			return fieldOp{kind: opFloat}, true
		}
	case avro.Double:
		switch {
		case k == reflect.Float64:
			return fieldOp{kind: opDouble}, true
		case k == reflect.Float32 && !decoding:
			return fieldOp{kind: opDoubleOf32}, true
		}
	case avro.String:
		if k == reflect.String && !isMarshaler(t) {
			return fieldOp{kind: opString}, true
		}
	case avro.Bytes:
		if k == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return fieldOp{kind: opBytes}, true
		}
	case avro.Enum:
		if k == reflect.String {
			return fieldOp{kind: opEnum, opExtra: &opExtra{symbols: s.(*avro.EnumSchema).Symbols()}}, true
		}
	case avro.Union:
		u := s.(*avro.UnionSchema)
		if !unionOK || k != reflect.Pointer || !u.Nullable() || t.Implements(unionConverterType) {
			break
		}
		null, val := u.Indices()
		elem, ok := opFor(u.Types()[val], t.Elem(), decoding, false)
		if !ok {
			break
		}
		return fieldOp{kind: opNullable, nullIdx: uint8(null), valIdx: uint8(val), opExtra: &opExtra{elem: &elem, elemType: t.Elem()}}, true
	}
	return fieldOp{}, false
}

// compileDecoder returns the plan for decoding data written with the record schema w into
// a value of type t (a pointer to a struct) as the record schema r (r == w when no
// resolution is needed), or nil when the pair is left to hamba. hamba has already found the
// two schemas compatible when r != w.
//
// Without resolution, each written field is decoded into the struct field of its name (or
// an alias) by decOpFor's operation, or skipped when the struct lacks it. With resolution
// (as hamba's SchemaCompatibility.Resolve builds it): written fields the reader lacks are
// skipped; fields in both are decoded when their types are identical (the same primitive
// type, enums with the same symbols, or nullable unions of the same primitive types; the
// reader's logical types apply); reader fields the writer lacks get the reader's default,
// decoded from the bytes hamba encodes it to. Type promotions (int to long, ...) and
// anything else leave the pair to hamba.
func compileDecoder(api avro.API, w, r avro.Schema, t reflect.Type) *decPlan {
	st := structOf(t, true)
	wrec, ok1 := w.(*avro.RecordSchema)
	rrec, ok2 := r.(*avro.RecordSchema)
	if st == nil || !ok1 || !ok2 {
		return nil
	}
	fields := describeStruct(st)
	p := &decPlan{}
	if w == r {
		for _, f := range wrec.Fields() {
			op, ok := fieldDecodeOp(fields, f, f.Type(), f.Type())
			if !ok {
				return nil
			}
			p.ops = append(p.ops, op)
		}
		return p
	}
	seen := map[string]bool{}
	for _, wf := range wrec.Fields() {
		rf := readerField(rrec, wf)
		if rf == nil {
			sk := skipperFor(wf.Type(), 0)
			if sk == nil {
				return nil
			}
			p.ops = append(p.ops, fieldOp{kind: opSkip, opExtra: &opExtra{skip: sk}})
			continue
		}
		seen[rf.Name()] = true
		typ := resolvedType(rf.Type(), wf.Type())
		if typ == nil {
			return nil
		}
		op, ok := fieldDecodeOp(fields, rf, typ, wf.Type())
		if !ok {
			return nil
		}
		p.ops = append(p.ops, op)
	}
	for _, rf := range rrec.Fields() {
		if seen[rf.Name()] {
			continue
		}
		gf := findFieldOrAlias(fields, rf)
		if gf == nil {
			continue
		}
		if gf.viaPtr || !rf.HasDefault() {
			return nil
		}
		op, ok := defaultOp(api, rf, gf.typ)
		if !ok {
			return nil
		}
		op.off = gf.off
		p.ops = append(p.ops, op)
	}
	return p
}

// fieldDecodeOp is the operation for a written field named as f, decoded with schema typ
// (the writer's type typ written is skipped when the struct lacks the field).
func fieldDecodeOp(fields []goField, f *avro.Field, typ, written avro.Schema) (fieldOp, bool) {
	gf := findFieldOrAlias(fields, f)
	if gf == nil {
		sk := skipperFor(written, 0)
		return fieldOp{kind: opSkip, opExtra: &opExtra{skip: sk}}, sk != nil
	}
	if gf.viaPtr {
		return fieldOp{}, false
	}
	op, ok := decOpFor(typ, gf.typ)
	op.off = gf.off
	return op, ok
}

// readerField is hamba's match of a writer field in the reader record: the first reader
// field with the writer field's name or listing it as an alias.
func readerField(r *avro.RecordSchema, wf *avro.Field) *avro.Field {
	for _, f := range r.Fields() {
		if f.Name() == wf.Name() || slices.Contains(f.Aliases(), wf.Name()) {
			return f
		}
	}
	return nil
}

func isPrimitiveType(t avro.Type) bool {
	switch t {
	case avro.Boolean, avro.Int, avro.Long, avro.Float, avro.Double, avro.String, avro.Bytes:
		return true
	}
	return false
}

// resolvedType is the schema hamba decodes a field written as w and read as r with, for
// the pairs the fast path supports (where it is r), else nil.
func resolvedType(r, w avro.Schema) avro.Schema {
	r, w = deref(r), deref(w)
	switch {
	case r.Type() != w.Type():
		return nil
	case isPrimitiveType(r.Type()):
		return r
	case r.Type() == avro.Enum:
		if slices.Equal(r.(*avro.EnumSchema).Symbols(), w.(*avro.EnumSchema).Symbols()) {
			return r
		}
	case r.Type() == avro.Union:
		ru, wu := r.(*avro.UnionSchema), w.(*avro.UnionSchema)
		if !ru.Nullable() || !wu.Nullable() {
			return nil
		}
		for i, rt := range ru.Types() {
			rt, wt := deref(rt), deref(wu.Types()[i])
			if rt.Type() != wt.Type() || rt.Type() != avro.Null && !isPrimitiveType(rt.Type()) {
				return nil
			}
		}
		return r
	}
	return nil
}

// defaultOp is the operation setting a reader field the writer lacks to its default: hamba
// encodes the default with the field's schema and decodes those bytes into the field.
func defaultOp(api avro.API, f *avro.Field, t reflect.Type) (fieldOp, bool) {
	def, err := api.Marshal(f.Type(), f.Default())
	if err != nil {
		return fieldOp{}, false
	}
	elem, ok := decOpFor(f.Type(), t)
	if !ok {
		return fieldOp{}, false
	}
	// hamba ignores errors decoding a default; accept only defaults that decode.
	ops := []fieldOp{elem}
	scratch := reflect.New(t).UnsafePointer()
	d := decoder{b: def, static: true}
	if !d.run(ops, scratch) {
		return fieldOp{}, false
	}
	return fieldOp{kind: opDefault, opExtra: &opExtra{def: def, defOps: ops}}, true
}

// skipNode says how to skip one written value, as hamba's createSkipDecoder does.
type skipNode struct {
	typ      avro.Type
	size     int         // fixed
	branches []*skipNode // union; nil for the null branch
	fields   []*skipNode // record
}

// skipperFor returns how to skip a value of schema s, or nil for the types the fast path does
// not skip (arrays, maps, null, records nested deeper than 16).
func skipperFor(s avro.Schema, depth int) *skipNode {
	s = deref(s)
	if depth > 16 {
		return nil
	}
	switch t := s.Type(); {
	case isPrimitiveType(t):
		return &skipNode{typ: t}
	case t == avro.Enum:
		return &skipNode{typ: avro.Int}
	case t == avro.Fixed:
		return &skipNode{typ: avro.Fixed, size: s.(*avro.FixedSchema).Size()}
	case t == avro.Union:
		n := &skipNode{typ: avro.Union}
		for _, b := range s.(*avro.UnionSchema).Types() {
			var bn *skipNode
			if deref(b).Type() != avro.Null {
				if bn = skipperFor(b, depth+1); bn == nil {
					return nil
				}
			}
			n.branches = append(n.branches, bn)
		}
		return n
	case t == avro.Record:
		n := &skipNode{typ: avro.Record}
		for _, f := range s.(*avro.RecordSchema).Fields() {
			fn := skipperFor(f.Type(), depth+1)
			if fn == nil {
				return nil
			}
			n.fields = append(n.fields, fn)
		}
		return n
	}
	return nil
}

// ---- encoding ----

// Varints are written as hamba's Writer does: zig-zag, then 7 bits a byte, low first.

func zigzag32(i int32) uint64 { return uint64((uint32(i) << 1) ^ uint32(i>>31)) }
func zigzag64(i int64) uint64 { return (uint64(i) << 1) ^ uint64(i>>63) }

func appendInt(dst []byte, i int32) []byte { return binary.AppendUvarint(dst, zigzag32(i)) }

// loadInt reads an integer field as hamba's intCodec and longCodec convert it.
func loadInt(ik intKind, p unsafe.Pointer) int64 {
	switch ik {
	case ikInt:
		return int64(*(*int)(p))
	case ikInt8:
		return int64(*(*int8)(p))
	case ikInt16:
		return int64(*(*int16)(p))
	case ikInt32:
		return int64(*(*int32)(p))
	case ikInt64:
		return *(*int64)(p)
	case ikUint8:
		return int64(*(*uint8)(p))
	case ikUint16:
		return int64(*(*uint16)(p))
	default: // ikUint32
		return int64(*(*uint32)(p))
	}
}

func storeInt(ik intKind, p unsafe.Pointer, v int64) {
	switch ik {
	case ikInt:
		*(*int)(p) = int(v)
	case ikInt8:
		*(*int8)(p) = int8(v)
	case ikInt16:
		*(*int16)(p) = int16(v)
	case ikInt32:
		*(*int32)(p) = int32(v)
	case ikInt64:
		*(*int64)(p) = v
	case ikUint8:
		*(*uint8)(p) = uint8(v)
	case ikUint16:
		*(*uint16)(p) = uint16(v)
	default: // ikUint32
		*(*uint32)(p) = uint32(v)
	}
}

func timeMillis(t time.Time) int64 { return t.Unix()*1e3 + int64(t.Nanosecond()/1e6) }
func timeMicros(t time.Time) int64 { return t.Unix()*1e6 + int64(t.Nanosecond()/1e3) }

func enumIndex(symbols []string, s string) int {
	for i, sym := range symbols {
		if sym == s {
			return i
		}
	}
	return -1
}

// Varints take at most 5 bytes for an int and 10 for a long.
const (
	maxVarint32 = 5
	maxVarint64 = 10
)

// maxSize bounds the bytes a leaf operation writes besides the contents of a string or
// bytes value.
func maxSize(op *fieldOp) int {
	switch op.kind {
	case opBool:
		return 1
	case opFloat:
		return 4
	case opDouble, opDoubleOf32:
		return 8
	case opInt, opInt64, opInt32, opEnum:
		return maxVarint32
	case opConst:
		return len(op.def)
	}
	return maxVarint64
}

// appendBody appends the body of the struct at base to dst. It returns false, and dst
// possibly extended in place, if the value cannot be encoded (an enum field holding no
// symbol of the schema).
func (p *encPlan) appendBody(dst []byte, base unsafe.Pointer) ([]byte, bool) {
	// b has room for every byte but the contents of strings and bytes, which are checked as
	// they come (with room for all the fixed bytes again, which is more than what remains).
	i, fixedMax := len(dst), p.fixedMax
	b := dst
	if cap(b)-i < fixedMax {
		b = slices.Grow(b, fixedMax)
	}
	b = b[:cap(b)]
	ops := p.ops
	k := 0
	for {
		// The inner loop handles the common kinds and makes no function calls, so that its
		// state stays in registers (Go's calling convention saves none across a call); any
		// other operation goes through appendSlow.
		for ; k < len(ops); k++ {
			op := &ops[k]
			f := unsafe.Add(base, op.off)
			switch op.kind {
			case opInt64:
				i = putUvarint(b, i, zigzag32(int32(*(*int)(f))))
			case opInt32:
				i = putUvarint(b, i, zigzag32(*(*int32)(f)))
			case opLong64:
				i = putUvarint(b, i, zigzag64(*(*int64)(f)))
			case opString:
				s := *(*string)(f)
				if len(s) > shortString || len(b)-i < len(s)+fixedMax {
					goto slow
				}
				i = putUvarint(b, i, uint64(len(s))<<1)
				for j := range len(s) { // copy would call memmove
					b[i+j] = s[j]
				}
				i += len(s)
			default:
				goto slow
			}
		}
		return b[:i], true
	slow:
		var ok bool
		if b, i, ok = appendSlow(b, i, &ops[k], unsafe.Add(base, ops[k].off), fixedMax); !ok {
			return b[:i], false
		}
		k++
	}
}

// shortString is the longest string appendBody copies byte by byte.
const shortString = 32

// appendSlow appends one operation's value for appendBody.
func appendSlow(b []byte, i int, op *fieldOp, f unsafe.Pointer, fixedMax int) ([]byte, int, bool) {
	if op.kind == opNullable {
		ep := *(*unsafe.Pointer)(f)
		if ep == nil {
			return b, putUvarint(b, i, uint64(op.nullIdx)<<1), true
		}
		i = putUvarint(b, i, uint64(op.valIdx)<<1)
		op, f = op.elem, ep
	}
	switch op.kind {
	case opInt64:
		i = putUvarint(b, i, zigzag32(int32(*(*int)(f))))
	case opInt32:
		i = putUvarint(b, i, zigzag32(*(*int32)(f)))
	case opLong64:
		i = putUvarint(b, i, zigzag64(*(*int64)(f)))
	case opInt:
		i = putUvarint(b, i, zigzag32(int32(loadInt(op.ik, f))))
	case opLong:
		i = putUvarint(b, i, zigzag64(loadInt(op.ik, f)))
	case opBool:
		b[i] = 0
		if *(*bool)(f) {
			b[i] = 1
		}
		i++
	case opFloat:
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(*(*float32)(f)))
		i += 4
	case opDouble:
		binary.LittleEndian.PutUint64(b[i:], math.Float64bits(*(*float64)(f)))
		i += 8
	case opDoubleOf32:
		binary.LittleEndian.PutUint64(b[i:], math.Float64bits(float64(*(*float32)(f))))
		i += 8
	case opString, opBytes:
		var s []byte
		if op.kind == opString {
			str := *(*string)(f)
			s = unsafe.Slice(unsafe.StringData(str), len(str)) // only read
		} else {
			s = *(*[]byte)(f)
		}
		if len(b)-i < len(s)+fixedMax {
			b = slices.Grow(b[:i], len(s)+fixedMax)
			b = b[:cap(b)]
		}
		i = putUvarint(b, i, zigzag64(int64(len(s))))
		i += copy(b[i:], s)
	case opEnum:
		x := enumIndex(op.symbols, *(*string)(f))
		if x < 0 {
			return b, i, false
		}
		i = putUvarint(b, i, zigzag32(int32(x)))
	case opTimeMillis:
		i = putUvarint(b, i, zigzag64(timeMillis(*(*time.Time)(f))))
	case opTimeMicros:
		i = putUvarint(b, i, zigzag64(timeMicros(*(*time.Time)(f))))
	case opConst:
		i += copy(b[i:], op.def)
	default:
		return b, i, false
	}
	return b, i, true
}

func putUvarint(b []byte, i int, u uint64) int {
	for u >= 0x80 {
		b[i] = byte(u) | 0x80
		u >>= 7
		i++
	}
	b[i] = byte(u)
	return i + 1
}

// ---- decoding ----

// sharedCopyMax bounds the copy of a body that its strings share: from the first string on,
// at most this many bytes. A string further from the end gets its own allocation, so that a
// small string kept from a big record does not keep the whole record alive.
const sharedCopyMax = 1024

// decoder reads one body. Its reads mirror hamba's Reader: the same varint limits (5 bytes
// for an int, 10 for a long, high bits beyond them dropped), the same length checks, and
// every shortfall is an error. Decoded strings and bytes never alias b unless static is set
// (for plan-owned default bytes, which are never modified).
type decoder struct {
	b      []byte
	pos    int
	static bool
	// shared is a copy of b[sharedAt:] as a string, made at the first non-empty string that
	// starts at most sharedCopyMax bytes from the end; the body's strings from there on
	// are substrings of it. The copy comes from arena when there is one.
	shared   string
	sharedAt int
	arena    *outArena
}

// decode decodes body into the struct at base, copying strings into pieces of arena (nil:
// the heap). It returns false if body does not fit (truncated, trailing bytes, an invalid
// value); the struct may then be partly written.
func (p *decPlan) decode(body []byte, base unsafe.Pointer, arena *outArena) bool {
	d := decoder{b: body, arena: arena}
	return d.run(p.ops, base) && d.pos == len(d.b)
}

func (d *decoder) readInt() (int32, bool) {
	var v uint32
	var s uint8
	for n := 0; n < 5; n++ {
		if d.pos >= len(d.b) {
			return 0, false
		}
		c := d.b[d.pos]
		d.pos++
		v |= uint32(c&0x7f) << s
		if c&0x80 == 0 {
			return int32((v >> 1) ^ -(v & 1)), true
		}
		s += 7
	}
	return 0, false
}

func (d *decoder) readLong() (int64, bool) {
	var v uint64
	var s uint8
	for n := 0; n < 10; n++ {
		if d.pos >= len(d.b) {
			return 0, false
		}
		c := d.b[d.pos]
		d.pos++
		v |= uint64(c&0x7f) << s
		if c&0x80 == 0 {
			return int64((v >> 1) ^ -(v & 1)), true
		}
		s += 7
	}
	return 0, false
}

// readLen reads a string or bytes length and checks it against the body and hamba's limit.
func (d *decoder) readLen() (int, bool) {
	n, ok := d.readLong()
	if !ok || n < 0 || n > maxByteSlice || n > int64(len(d.b)-d.pos) {
		return 0, false
	}
	return int(n), true
}

func (d *decoder) readFixed(n int) ([]byte, bool) {
	if len(d.b)-d.pos < n {
		return nil, false
	}
	b := d.b[d.pos : d.pos+n]
	d.pos += n
	return b, true
}

func (d *decoder) readString() (string, bool) {
	n, ok := d.readLen()
	if !ok || n == 0 {
		return "", ok
	}
	start := d.pos
	d.pos += n
	switch {
	case d.static:
		return unsafe.String(&d.b[start], n), true
	case d.shared != "":
		return d.shared[start-d.sharedAt : d.pos-d.sharedAt], true
	case len(d.b)-start <= sharedCopyMax:
		var cp []byte
		if d.arena != nil {
			cp = d.arena.alloc(len(d.b) - start)
		} else {
			cp = make([]byte, len(d.b)-start)
		}
		copy(cp, d.b[start:])
		// cp is never written again: the strings cut from it are immutable.
		d.shared, d.sharedAt = unsafe.String(unsafe.SliceData(cp), len(cp)), start
		return d.shared[:n], true
	}
	return string(d.b[start:d.pos]), true
}

// run applies ops to the struct at base. It does not recurse (a default swaps the body
// being read for the default's bytes for one operation), so the decoders stay on the stack.
func (d *decoder) run(ops []fieldOp, base unsafe.Pointer) bool {
	var saved decoder
	for k := range ops {
		op := &ops[k]
		f := unsafe.Add(base, op.off)
		restore := false
	again:
		switch op.kind {
		case opInt64:
			v, ok := d.readInt()
			if !ok {
				return false
			}
			*(*int)(f) = int(v)
		case opInt32:
			v, ok := d.readInt()
			if !ok {
				return false
			}
			*(*int32)(f) = v
		case opLong64:
			v, ok := d.readLong()
			if !ok {
				return false
			}
			*(*int64)(f) = v
		case opString:
			s, ok := d.readString()
			if !ok {
				return false
			}
			*(*string)(f) = s
		case opNullable:
			i, ok := d.readInt()
			if !ok || i < 0 || i > 1 {
				return false
			}
			pp := (*unsafe.Pointer)(f)
			if i == int32(op.nullIdx) {
				*pp = nil
				break
			}
			// As hamba: decode into the existing pointee, or into a new one (which hamba
			// stores after decoding into it, error or not).
			if *pp == nil {
				*pp = reflect.New(op.elemType).UnsafePointer()
			}
			op, f = op.elem, *pp
			goto again
		case opDefault:
			saved, restore = *d, true
			*d = decoder{b: op.def, static: true}
			op = &op.defOps[0]
			goto again
		case opSkip:
			if !d.skip(op.skip) {
				return false
			}
		case opInt:
			v, ok := d.readInt()
			if !ok {
				return false
			}
			storeInt(op.ik, f, int64(v))
		case opLong:
			v, ok := d.readLong()
			if !ok {
				return false
			}
			storeInt(op.ik, f, v)
		case opBool:
			b, ok := d.readFixed(1)
			if !ok || b[0] > 1 {
				return false
			}
			*(*bool)(f) = b[0] == 1
		case opFloat:
			b, ok := d.readFixed(4)
			if !ok {
				return false
			}
			*(*float32)(f) = math.Float32frombits(binary.LittleEndian.Uint32(b))
		case opDouble:
			b, ok := d.readFixed(8)
			if !ok {
				return false
			}
			*(*float64)(f) = math.Float64frombits(binary.LittleEndian.Uint64(b))
		case opBytes:
			n, ok := d.readLen()
			if !ok {
				return false
			}
			b := make([]byte, n) // hamba returns an empty, non-nil slice for length 0
			copy(b, d.b[d.pos:])
			d.pos += n
			*(*[]byte)(f) = b
		case opEnum:
			i, ok := d.readInt()
			if !ok || i < 0 || int(i) >= len(op.symbols) {
				return false
			}
			*(*string)(f) = op.symbols[i]
		case opTimeMillis:
			i, ok := d.readLong()
			if !ok {
				return false
			}
			sec := i / 1e3
			*(*time.Time)(f) = time.Unix(sec, (i-sec*1e3)*1e6).UTC()
		case opTimeMicros:
			i, ok := d.readLong()
			if !ok {
				return false
			}
			sec := i / 1e6
			*(*time.Time)(f) = time.Unix(sec, (i-sec*1e6)*1e3).UTC()
		default:
			return false
		}
		if restore {
			*d = saved
		}
	}
	return true
}

// skip mirrors hamba's skip decoders (reader_skip.go): booleans are not checked, an int or
// long ends after at most 5 or 10 bytes whatever the last one says, and a string or bytes
// length of zero or less skips nothing.
func (d *decoder) skip(n *skipNode) bool {
	switch n.typ {
	case avro.Boolean:
		_, ok := d.readFixed(1)
		return ok
	case avro.Int, avro.Long:
		limit := 5
		if n.typ == avro.Long {
			limit = 10
		}
		for range limit {
			if d.pos >= len(d.b) {
				return false
			}
			c := d.b[d.pos]
			d.pos++
			if c&0x80 == 0 {
				break
			}
		}
		return true
	case avro.Float:
		_, ok := d.readFixed(4)
		return ok
	case avro.Double:
		_, ok := d.readFixed(8)
		return ok
	case avro.String, avro.Bytes:
		l, ok := d.readLong()
		if !ok {
			return false
		}
		if l <= 0 {
			return true
		}
		if l > int64(len(d.b)-d.pos) {
			return false
		}
		d.pos += int(l)
		return true
	case avro.Fixed:
		_, ok := d.readFixed(n.size)
		return ok
	case avro.Union:
		i, ok := d.readInt()
		if !ok || i < 0 || int(i) >= len(n.branches) {
			return false
		}
		if b := n.branches[i]; b != nil {
			return d.skip(b)
		}
		return true
	case avro.Record:
		for _, f := range n.fields {
			if !d.skip(f) {
				return false
			}
		}
		return true
	}
	return false
}
