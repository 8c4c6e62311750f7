package codec

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/pyrite-dev/pyrite/internal/jsonscan"
)

// AppendJSON appends to dst the framed encoding with s of a JSON document as ParseJSON
// returns it: exactly what AppendEncode(dst, s, m) appends for m, err := FromJSONValue(s, v),
// with the same errors. For records of scalars, enums, nullable scalars and nested records
// (the shape of most events) it writes the Avro bytes straight from the tree, without the
// intermediate map and its validation; any other schema, and any value it does not take as
// it is (a missing field without a default, an unknown or duplicate key, a value of the wrong
// kind, Avro JSON's {"type": value} union form), goes through FromJSONValue and
// AppendEncode, which also give the errors. On error dst is returned unchanged.
func (c *Codec) AppendJSON(dst []byte, s *Schema, v any) ([]byte, error) {
	if p := c.jsonPlan(s); p != nil {
		if out, ok := p.append(AppendHeader(dst, s.ID), v); ok {
			return out, nil
		}
	}
	m, err := FromJSONValue(s, v)
	if err != nil {
		return dst, err
	}
	return c.AppendEncode(dst, s, m)
}

// AppendJSONText is AppendJSON for a JSON object's text: what AppendEncode(dst, s, m) appends
// for m, err := FromJSON(s, []byte(text)), with the same errors. Text in the common shape
// (see AppendJSON, and jsonscan for the JSON it reads in place) is encoded without parsing
// it into a tree.
func (c *Codec) AppendJSONText(dst []byte, s *Schema, text string) ([]byte, error) {
	if p := c.jsonPlan(s); p != nil {
		if out, ok := p.appendText(AppendHeader(dst, s.ID), text); ok {
			return out, nil
		}
	}
	m, err := FromJSON(s, []byte(text))
	if err != nil {
		return dst, err
	}
	return c.AppendEncode(dst, s, m)
}

// jsonPlan returns the plan AppendJSON and AppendJSONText encode s with, or nil for a schema
// left to the general path (which also reports a schema Encode cannot frame).
func (c *Codec) jsonPlan(s *Schema) *jsonPlan {
	if checkEncodeSchema(s) != nil {
		return nil
	}
	return c.bindingOf(s).jsonPlanOf(s.Avro)
}

// jsonOp is what one record field of a jsonPlan takes.
type jsonOp uint8

const (
	jsonNull jsonOp = iota
	jsonBool
	jsonInt
	jsonLong
	jsonTimeMillis // a long of timestamp-millis
	jsonTimeMicros // a long of timestamp-micros
	jsonFloat
	jsonDouble
	jsonString
	jsonEnum
	jsonRecord
)

// jsonPlan encodes one record schema from a JSON object.
type jsonPlan struct {
	fields []jsonField
}

type jsonField struct {
	name     string
	op       jsonOp
	nullable bool // a union of null and the op's type, in either order
	nullIdx  int  // the union's branch indices
	valIdx   int
	symbols  []string  // jsonEnum
	rec      *jsonPlan // jsonRecord
	def      []byte    // the encoded default, for a field missing from the object
	hasDef   bool
}

// jsonPlanState holds a binding's compiled jsonPlan (nil when the schema is left to the
// general path), compiled on first use.
type jsonPlanState struct {
	done atomic.Bool
	plan atomic.Pointer[jsonPlan]
}

func (b *binding) jsonPlanOf(s avro.Schema) *jsonPlan {
	if b.json.done.Load() {
		return b.json.plan.Load()
	}
	p := compileJSONPlan(b.api, s, 0)
	b.json.plan.Store(p)
	b.json.done.Store(true)
	return p
}

// compileJSONPlan returns the plan for record schema s, or nil when some field has a type the
// plan does not take (arrays, maps, bytes, fixed, other logical types, other unions: their
// conversion and hamba's encoding of them are left to the general path).
func compileJSONPlan(api avro.API, s avro.Schema, depth int) *jsonPlan {
	rs, ok := derefSchema(s).(*avro.RecordSchema)
	if !ok || depth > maxJSONDepth/2 { // FromJSON refuses trees deeper than maxJSONDepth
		return nil
	}
	p := &jsonPlan{fields: make([]jsonField, len(rs.Fields()))}
	for i, f := range rs.Fields() {
		jf := jsonField{name: f.Name()}
		t := derefSchema(f.Type())
		if us, ok := t.(*avro.UnionSchema); ok {
			types := us.Types()
			if len(types) != 2 || !us.Nullable() {
				return nil
			}
			jf.nullable = true
			jf.nullIdx, jf.valIdx = 0, 1
			if types[1].Type() == avro.Null {
				jf.nullIdx, jf.valIdx = 1, 0
			}
			t = derefSchema(types[jf.valIdx])
			if t.Type() == avro.Record || t.Type() == avro.Null {
				return nil // a record branch may come as {"name": value}: left to FromJSON
			}
		}
		switch lt := logicalOf(t); {
		case t.Type() == avro.Null:
			jf.op = jsonNull
		case t.Type() == avro.Boolean:
			jf.op = jsonBool
		case t.Type() == avro.Int && lt == "":
			jf.op = jsonInt
		case t.Type() == avro.Long && lt == "":
			jf.op = jsonLong
		case t.Type() == avro.Long && lt == avro.TimestampMillis:
			jf.op = jsonTimeMillis
		case t.Type() == avro.Long && lt == avro.TimestampMicros:
			jf.op = jsonTimeMicros
		case t.Type() == avro.Float:
			jf.op = jsonFloat
		case t.Type() == avro.Double:
			jf.op = jsonDouble
		case t.Type() == avro.String && lt == "":
			jf.op = jsonString
		case t.Type() == avro.Enum:
			jf.op, jf.symbols = jsonEnum, t.(*avro.EnumSchema).Symbols()
		case t.Type() == avro.Record:
			if jf.rec = compileJSONPlan(api, t, depth+1); jf.rec == nil {
				return nil
			}
			jf.op = jsonRecord
		default:
			return nil
		}
		if f.HasDefault() {
			// What the general path writes for a missing field: FromJSON's value for the
			// default, encoded by hamba with the field's schema.
			def, err := api.Marshal(f.Type(), nativeDefault(f.Type(), f.Default()))
			if err != nil {
				return nil
			}
			jf.def, jf.hasDef = def, true
		}
		p.fields[i] = jf
	}
	return p
}

// append appends the body for the JSON object v (a tree from ParseJSON), or returns false
// when v is not one the plan takes as it is.
func (p *jsonPlan) append(b []byte, v any) ([]byte, bool) {
	obj, ok := v.(*JSONObject)
	if !ok {
		return b, false
	}
	used := 0
	for i := range p.fields {
		f := &p.fields[i]
		val, found := member(obj, f.name)
		if !found {
			if !f.hasDef {
				return b, false
			}
			b = append(b, f.def...)
			continue
		}
		used++
		if f.op == jsonRecord {
			if b, ok = f.rec.append(b, val); !ok {
				return b, false
			}
			continue
		}
		var kind jsonscan.Kind
		var lit string
		switch x := val.(type) {
		case nil:
			kind = jsonscan.Null
		case bool:
			kind = jsonscan.False
			if x {
				kind = jsonscan.True
			}
		case json.Number:
			kind, lit = jsonscan.Number, string(x)
		case string:
			kind, lit = jsonscan.String, x
		default:
			return b, false
		}
		if b, ok = f.appendLeaf(b, kind, lit); !ok {
			return b, false
		}
	}
	// Every member must have named a field once: an unknown or duplicate key is an error the
	// general path reports.
	return b, used == len(obj.Members)
}

// member returns the value of the first member named key.
func member(obj *JSONObject, key string) (any, bool) {
	for i := range obj.Members {
		if obj.Members[i].Key == key {
			return obj.Members[i].Value, true
		}
	}
	return nil, false
}

// maxTextFields bounds the fields of a record appendText takes (one bit each).
const maxTextFields = 64

// appendText appends the body for the JSON object text, read in place with jsonscan, or
// returns false when the text is not one the plan takes as it is (jsonscan's subset, every
// key a field once, values of the fields' kinds).
func (p *jsonPlan) appendText(b []byte, text string) ([]byte, bool) {
	if len(p.fields) > maxTextFields {
		return b, false
	}
	type value struct {
		kind jsonscan.Kind
		text string
	}
	var vals [maxTextFields]value
	var seen uint64
	sc := jsonscan.Scanner{Text: text}
	ok := sc.Members(func(key string) bool {
		i := p.fieldIndex(key)
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		vals[i].kind, vals[i].text = sc.SkipValue()
		return vals[i].kind != jsonscan.Invalid
	})
	if !ok || !sc.End() {
		return b, false
	}
	for i := range p.fields {
		f := &p.fields[i]
		switch {
		case seen&(1<<i) == 0:
			if !f.hasDef {
				return b, false
			}
			b = append(b, f.def...)
		case f.op == jsonRecord:
			if vals[i].kind != jsonscan.Object {
				return b, false
			}
			if b, ok = f.rec.appendText(b, vals[i].text); !ok {
				return b, false
			}
		default:
			if b, ok = f.appendLeaf(b, vals[i].kind, vals[i].text); !ok {
				return b, false
			}
		}
	}
	return b, true
}

func (p *jsonPlan) fieldIndex(name string) int {
	for i := range p.fields {
		if p.fields[i].name == name {
			return i
		}
	}
	return -1
}

// appendLeaf appends one field's value, given as a JSON value's kind and text (a string's
// content, a number's literal), as FromJSON converts it and hamba encodes the result.
func (f *jsonField) appendLeaf(b []byte, kind jsonscan.Kind, lit string) ([]byte, bool) {
	if f.nullable {
		if kind == jsonscan.Null {
			return binary.AppendUvarint(b, uint64(f.nullIdx)<<1), true
		}
		b = binary.AppendUvarint(b, uint64(f.valIdx)<<1)
	}
	switch f.op {
	case jsonNull:
		return b, kind == jsonscan.Null
	case jsonBool:
		switch kind {
		case jsonscan.True:
			return append(b, 1), true
		case jsonscan.False:
			return append(b, 0), true
		}
		return b, false
	case jsonInt, jsonLong:
		if kind != jsonscan.Number {
			return b, false
		}
		if f.op == jsonInt {
			i, ok := parseInt(lit, 32)
			return binary.AppendUvarint(b, zigzag32(int32(i))), ok
		}
		i, ok := parseInt(lit, 64)
		return binary.AppendUvarint(b, zigzag64(i)), ok
	case jsonTimeMillis, jsonTimeMicros:
		t, ok := jsonTime(kind, lit, f.op == jsonTimeMillis)
		if !ok {
			return b, false
		}
		if f.op == jsonTimeMillis {
			return binary.AppendUvarint(b, zigzag64(timeMillis(t))), true
		}
		return binary.AppendUvarint(b, zigzag64(timeMicros(t))), true
	case jsonFloat, jsonDouble:
		if kind != jsonscan.Number {
			return b, false
		}
		x, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return b, false
		}
		if f.op == jsonDouble {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(x)), true
		}
		if math.Abs(x) > math.MaxFloat32 {
			return b, false
		}
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x))), true
	case jsonString:
		if kind != jsonscan.String {
			return b, false
		}
		return append(binary.AppendUvarint(b, zigzag64(int64(len(lit)))), lit...), true
	case jsonEnum:
		x := enumIndex(f.symbols, lit)
		if kind != jsonscan.String || x < 0 {
			return b, false
		}
		return binary.AppendUvarint(b, zigzag32(int32(x))), true
	}
	return b, false
}

// parseInt is strconv.ParseInt(lit, 10, bits) for a JSON number literal, with the short
// literals of plain integers (most of them) read here.
func parseInt(lit string, bits int) (int64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	if len(digits) == 0 || len(digits) > 9 {
		i, err := strconv.ParseInt(lit, 10, bits)
		return i, err == nil
	}
	var n int64
	for i := range len(digits) {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false // a fraction or an exponent: not an integer
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, bits == 64 || n >= -1<<31 && n <= 1<<31-1
}

// jsonTime is FromJSON's reading of a timestamp: an RFC 3339 string truncated to the type's
// precision, or an integer of epoch milli- or microseconds.
func jsonTime(kind jsonscan.Kind, lit string, millis bool) (time.Time, bool) {
	switch kind {
	case jsonscan.String:
		t, err := time.Parse(time.RFC3339Nano, lit)
		if err != nil {
			return time.Time{}, false
		}
		if millis {
			return t.UTC().Truncate(time.Millisecond), true
		}
		return t.UTC().Truncate(time.Microsecond), true
	case jsonscan.Number:
		i, err := strconv.ParseInt(lit, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		if millis {
			return time.UnixMilli(i).UTC(), true
		}
		return time.UnixMicro(i).UTC(), true
	}
	return time.Time{}, false
}
