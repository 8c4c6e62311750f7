package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// maxJSONDepth bounds the nesting of a JSON document FromJSON accepts.
const maxJSONDepth = 64

// FromJSON converts a JSON object to the value Encode takes for schema s (a map[string]any),
// checking it against the schema. The JSON is the plain form a person writes, not Avro's JSON
// encoding:
//
//   - timestamp-millis and timestamp-micros take an RFC 3339 string or an integer of epoch
//     milli-/microseconds (a UTC time.Time in the result, precision beyond the type's
//     truncated);
//     date takes "2006-01-02" or days since the epoch;
//   - int and long take integers in range (not 1.0); float and double take numbers;
//   - bytes and fixed take base64 strings; enums their symbol;
//   - a union takes null (if a branch is null) or a value of one branch, tried in order, or
//     Avro-JSON's {"<branch type name>": value};
//   - a record field missing from the object takes its default; one without a default, an
//     unknown key, a duplicate key, and a value of the wrong type are errors.
//
// The error, if any, is a *FieldErrors listing every field at fault (in document order, then
// missing fields in schema order) and wraps ErrInvalidData; malformed JSON is reported as one
// FieldError with an empty Field.
func FromJSON(s *Schema, data []byte) (map[string]any, error) {
	if s == nil || s.Avro == nil {
		return nil, errors.New("codec: FromJSON: nil schema")
	}
	doc, err := ParseJSON(data)
	if err != nil {
		// Malformed input is rare and its message is part of the answer: describe it in
		// encoding/json's words, with the reader FromJSON has always used.
		if doc, err = describeJSON(data); err != nil {
			return nil, &FieldErrors{{Field: "", Message: "invalid JSON: " + err.Error()}}
		}
	}
	return fromJSONDoc(s, doc)
}

// FromJSONValue is FromJSON for a document ParseJSON has parsed already (a *JSONObject, or
// any value of the tree, which is then reported as not an object), e.g. one member of a
// larger document, which saves parsing its bytes again. It applies FromJSON's rules to v as
// FromJSON applies them to v's text: a duplicate key, or nesting deeper than 64 levels below
// v, is reported as invalid JSON. It only reads v.
func FromJSONValue(s *Schema, v any) (map[string]any, error) {
	if s == nil || s.Avro == nil {
		return nil, errors.New("codec: FromJSONValue: nil schema")
	}
	return fromJSONDoc(s, v)
}

func fromJSONDoc(s *Schema, doc any) (map[string]any, error) {
	if err := checkJSONTree(doc, 0); err != nil {
		return nil, &FieldErrors{{Field: "", Message: "invalid JSON: " + err.Error()}}
	}
	if _, ok := doc.(*JSONObject); !ok {
		return nil, &FieldErrors{{Field: "", Message: "must be a JSON object, got " + jsonKind(doc)}}
	}
	var errs FieldErrors
	v, ok := fromJSON(s.Avro, doc, "", &errs)
	if len(errs) > 0 || !ok {
		fes := errs // errs stays on the stack when there is nothing to report
		if len(fes) == 0 {
			fes = FieldErrors{{Field: "", Message: "does not fit the schema"}}
		}
		return nil, &fes
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &FieldErrors{{Field: "", Message: "schema " + s.Subject + " is not a record"}}
	}
	return m, nil
}

// checkJSONTree applies the rules FromJSON adds to JSON's (ParseJSON keeps duplicate keys and
// nests up to 10000 levels) in document order, so the first fault is the one a reader going
// through the text would meet first.
func checkJSONTree(v any, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	switch t := v.(type) {
	case *JSONObject:
		var seen map[string]struct{} // for large objects only; small ones are scanned
		const scan = 16
		for i, m := range t.Members {
			dup := false
			if i < scan {
				for _, e := range t.Members[:i] {
					if e.Key == m.Key {
						dup = true
						break
					}
				}
			} else {
				if seen == nil {
					seen = make(map[string]struct{}, len(t.Members))
					for _, e := range t.Members[:i] {
						seen[e.Key] = struct{}{}
					}
				}
				_, dup = seen[m.Key]
				seen[m.Key] = struct{}{}
			}
			if dup {
				return fmt.Errorf("duplicate key %q", m.Key)
			}
			if err := checkJSONTree(m.Value, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range t {
			if err := checkJSONTree(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// describeJSON reads data with encoding/json's tokenizer, applying FromJSON's rules (no
// duplicate keys, no trailing data, at most 64 levels), and returns the first fault in
// encoding/json's words. It is the reference ParseJSON and checkJSONTree are tested against,
// and FromJSON uses it only to describe input ParseJSON rejected.
func describeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := describeJSONValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level value")
	}
	return v, nil
}

func describeJSONValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &JSONObject{}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				if seen[k] {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				seen[k] = true
				v, err := describeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj.Members = append(obj.Members, JSONMember{Key: k, Value: v})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := describeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return arr, nil
		default:
			return nil, fmt.Errorf("unexpected %q", rune(t))
		}
	default:
		return tok, nil // nil, bool, json.Number, string
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case *JSONObject:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func keyPath(parent, key string) string {
	return parent + "[" + strconv.Quote(key) + "]"
}

func derefSchema(s avro.Schema) avro.Schema {
	for {
		r, ok := s.(*avro.RefSchema)
		if !ok {
			return s
		}
		s = r.Schema()
	}
}

func logicalOf(s avro.Schema) avro.LogicalType {
	var ls avro.LogicalSchema
	switch t := s.(type) {
	case *avro.PrimitiveSchema:
		ls = t.Logical()
	case *avro.FixedSchema:
		ls = t.Logical()
	}
	if ls == nil {
		return ""
	}
	return ls.Type()
}

// typeName is the name hamba and Avro JSON give a union branch: the full name of a named type,
// else the type, with ".<logicalType>" for logical primitives.
func typeName(s avro.Schema) string {
	s = derefSchema(s)
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if lt := logicalOf(s); lt != "" {
		name += "." + string(lt)
	}
	return name
}

// fromJSON converts a parsed JSON value v to the native value for s, appending problems to
// errs. ok is false when v did not fit (errors were added).
func fromJSON(s avro.Schema, v any, path string, errs *FieldErrors) (any, bool) {
	s = derefSchema(s)
	bad := func(msg string) (any, bool) {
		*errs = append(*errs, FieldError{Field: path, Message: msg})
		return nil, false
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			return bad("must be null, got " + jsonKind(v))
		}
		return nil, true
	case avro.Boolean:
		b, ok := v.(bool)
		if !ok {
			return bad("must be a boolean, got " + jsonKind(v))
		}
		return b, true
	case avro.Int, avro.Long:
		return intFromJSON(s, v, bad)
	case avro.Float, avro.Double:
		n, ok := v.(json.Number)
		if !ok {
			return bad("must be a number, got " + jsonKind(v))
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return bad("number out of range")
		}
		if s.Type() == avro.Float {
			if math.Abs(f) > math.MaxFloat32 {
				return bad("number out of range for float")
			}
			return float32(f), true
		}
		return f, true
	case avro.String:
		if _, ok := v.(string); !ok {
			return bad("must be a string, got " + jsonKind(v))
		}
		return v, true // the string as the tree holds it, without boxing it again
	case avro.Bytes, avro.Fixed:
		str, ok := v.(string)
		if !ok {
			return bad("must be a base64 string, got " + jsonKind(v))
		}
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			return bad("must be a base64 string: " + err.Error())
		}
		if f, ok := s.(*avro.FixedSchema); ok {
			if len(b) != f.Size() {
				return bad(fmt.Sprintf("must be %d bytes, got %d", f.Size(), len(b)))
			}
			if logicalOf(s) != "" {
				return bad("fixed logical type " + string(logicalOf(s)) + " is not supported in JSON")
			}
			arr := reflect.New(reflect.ArrayOf(f.Size(), reflect.TypeFor[byte]())).Elem()
			reflect.Copy(arr, reflect.ValueOf(b))
			return arr.Interface(), true
		}
		if logicalOf(s) != "" {
			return bad("bytes logical type " + string(logicalOf(s)) + " is not supported in JSON")
		}
		return b, true
	case avro.Enum:
		e := s.(*avro.EnumSchema)
		str, ok := v.(string)
		if !ok {
			return bad("must be a string, got " + jsonKind(v))
		}
		if !slices.Contains(e.Symbols(), str) {
			return bad(fmt.Sprintf("must be one of %s", strings.Join(e.Symbols(), ", ")))
		}
		return v, true
	case avro.Array:
		arr, ok := v.([]any)
		if !ok {
			return bad("must be an array, got " + jsonKind(v))
		}
		items := s.(*avro.ArraySchema).Items()
		out := make([]any, len(arr))
		good := true
		for i, e := range arr {
			var ok bool
			out[i], ok = fromJSON(items, e, path+"["+strconv.Itoa(i)+"]", errs)
			good = good && ok
		}
		return out, good
	case avro.Map:
		obj, ok := v.(*JSONObject)
		if !ok {
			return bad("must be an object, got " + jsonKind(v))
		}
		values := s.(*avro.MapSchema).Values()
		out := make(map[string]any, len(obj.Members))
		good := true
		for _, m := range obj.Members {
			var ok bool
			out[m.Key], ok = fromJSON(values, m.Value, keyPath(path, m.Key), errs)
			good = good && ok
		}
		return out, good
	case avro.Record:
		return recordFromJSON(s.(*avro.RecordSchema), v, path, errs)
	case avro.Union:
		return unionFromJSON(s.(*avro.UnionSchema), v, path, errs)
	}
	return bad("schema type " + string(s.Type()) + " is not supported in JSON")
}

func intFromJSON(s avro.Schema, v any, bad func(string) (any, bool)) (any, bool) {
	lt := logicalOf(s)
	long := s.Type() == avro.Long
	if str, ok := v.(string); ok {
		switch lt {
		case avro.TimestampMillis, avro.TimestampMicros:
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return bad("must be an RFC 3339 timestamp or epoch " + epochUnit(lt) + ": " + err.Error())
			}
			if lt == avro.TimestampMillis {
				return t.UTC().Truncate(time.Millisecond), true
			}
			return t.UTC().Truncate(time.Microsecond), true
		case avro.Date:
			t, err := time.Parse(time.DateOnly, str)
			if err != nil {
				return bad("must be a date (2006-01-02) or days since the epoch: " + err.Error())
			}
			return t, true
		}
	}
	n, ok := v.(json.Number)
	if !ok {
		switch lt {
		case avro.TimestampMillis, avro.TimestampMicros:
			return bad("must be an RFC 3339 timestamp or epoch " + epochUnit(lt) + ", got " + jsonKind(v))
		case avro.Date:
			return bad("must be a date (2006-01-02) or days since the epoch, got " + jsonKind(v))
		}
		return bad("must be an integer, got " + jsonKind(v))
	}
	bits := 32
	if long {
		bits = 64
	}
	i, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		if long {
			return bad("must be an integer between -9223372036854775808 and 9223372036854775807")
		}
		return bad("must be an integer between -2147483648 and 2147483647")
	}
	switch lt {
	case avro.TimestampMillis:
		return time.UnixMilli(i).UTC(), true
	case avro.TimestampMicros:
		return time.UnixMicro(i).UTC(), true
	case avro.Date:
		return time.Unix(i*86400, 0).UTC(), true
	case avro.TimeMillis:
		return time.Duration(i) * time.Millisecond, true
	case avro.TimeMicros:
		return time.Duration(i) * time.Microsecond, true
	}
	if long {
		return i, true
	}
	return int(i), true
}

func epochUnit(lt avro.LogicalType) string {
	if lt == avro.TimestampMicros {
		return "microseconds"
	}
	return "milliseconds"
}

func recordFromJSON(rs *avro.RecordSchema, v any, path string, errs *FieldErrors) (any, bool) {
	obj, ok := v.(*JSONObject)
	if !ok {
		*errs = append(*errs, FieldError{Field: path, Message: "must be an object, got " + jsonKind(v)})
		return nil, false
	}
	fields := rs.Fields()
	out := make(map[string]any, len(fields))
	good := true
	for _, m := range obj.Members {
		f := fieldNamed(fields, m.Key)
		if f == nil {
			*errs = append(*errs, FieldError{Field: fieldPath(path, m.Key), Message: "unknown field"})
			good = false
			continue
		}
		val, ok := fromJSON(f.Type(), m.Value, fieldPath(path, m.Key), errs)
		good = good && ok
		out[m.Key] = val // every member that names a field has an entry, even a bad one
	}
	for _, f := range fields {
		if _, ok := out[f.Name()]; ok {
			continue
		}
		if !f.HasDefault() {
			*errs = append(*errs, FieldError{Field: fieldPath(path, f.Name()), Message: "required field is missing"})
			good = false
			continue
		}
		out[f.Name()] = nativeDefault(f.Type(), f.Default())
	}
	return out, good
}

func fieldNamed(fields []*avro.Field, name string) *avro.Field {
	for _, f := range fields {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// unionFromJSON accepts null, Avro JSON's {"type name": value}, or a plain value of a branch
// (the first branch it fits). The result is nil, a plain value for a nullable union of one
// primitive type, or {"type name": value}, which hamba encodes without guessing.
func unionFromJSON(us *avro.UnionSchema, v any, path string, errs *FieldErrors) (any, bool) {
	types := us.Types()
	var nonNull []avro.Schema
	for _, t := range types {
		if t.Type() != avro.Null {
			nonNull = append(nonNull, t)
		}
	}
	if v == nil {
		if len(nonNull) < len(types) {
			return nil, true
		}
		*errs = append(*errs, FieldError{Field: path, Message: "must not be null"})
		return nil, false
	}
	plain := len(nonNull) == 1 && isPrimitive(nonNull[0])
	wrap := func(t avro.Schema, val any) any {
		if plain {
			return val
		}
		return map[string]any{typeName(t): val}
	}
	if obj, ok := v.(*JSONObject); ok && len(obj.Members) == 1 {
		m := obj.Members[0]
		for _, t := range nonNull {
			if m.Key == typeName(t) || m.Key == string(derefSchema(t).Type()) && isPrimitive(t) {
				val, ok := fromJSON(t, m.Value, keyPath(path, m.Key), errs)
				return wrap(t, val), ok
			}
		}
	}
	if len(nonNull) == 1 {
		val, ok := fromJSON(nonNull[0], v, path, errs)
		return wrap(nonNull[0], val), ok
	}
	names := make([]string, len(nonNull))
	for i, t := range nonNull {
		var scratch FieldErrors
		if val, ok := fromJSON(t, v, path, &scratch); ok && len(scratch) == 0 {
			return wrap(t, val), true
		}
		names[i] = typeName(t)
	}
	*errs = append(*errs, FieldError{Field: path, Message: "must be null or one of " + strings.Join(names, ", ")})
	return nil, false
}

func isPrimitive(s avro.Schema) bool {
	switch derefSchema(s).Type() {
	case avro.Null, avro.Boolean, avro.Int, avro.Long, avro.Float, avro.Double, avro.String, avro.Bytes:
		return true
	}
	return false
}

// nativeDefault converts a field default as hamba parsed it to the value FromJSON would have
// produced, copying containers so callers can change the result.
func nativeDefault(s avro.Schema, def any) any {
	s = derefSchema(s)
	switch s.Type() {
	case avro.Union:
		// A union's default is a value of its first branch.
		first := s.(*avro.UnionSchema).Types()[0]
		if first.Type() == avro.Null || def == nil {
			return nil
		}
		val := nativeDefault(first, def)
		if len(s.(*avro.UnionSchema).Types()) == 2 && s.(*avro.UnionSchema).Nullable() && isPrimitive(first) {
			return val
		}
		return map[string]any{typeName(first): val}
	case avro.Long, avro.Int:
		var i int64
		switch d := def.(type) {
		case int:
			i = int64(d)
		case int64:
			i = d
		case float64:
			i = int64(d)
		}
		switch logicalOf(s) {
		case avro.TimestampMillis:
			return time.UnixMilli(i).UTC()
		case avro.TimestampMicros:
			return time.UnixMicro(i).UTC()
		case avro.Date:
			return time.Unix(i*86400, 0).UTC()
		case avro.TimeMillis:
			return time.Duration(i) * time.Millisecond
		case avro.TimeMicros:
			return time.Duration(i) * time.Microsecond
		}
		if s.Type() == avro.Long {
			return i
		}
		return int(i)
	case avro.Bytes:
		if b, ok := def.([]byte); ok {
			return slices.Clone(b)
		}
	case avro.Array:
		if arr, ok := def.([]any); ok {
			out := make([]any, len(arr))
			for i, e := range arr {
				out[i] = nativeDefault(s.(*avro.ArraySchema).Items(), e)
			}
			return out
		}
	case avro.Map:
		if m, ok := def.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = nativeDefault(s.(*avro.MapSchema).Values(), e)
			}
			return out
		}
	case avro.Record:
		if m, ok := def.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for _, f := range s.(*avro.RecordSchema).Fields() {
				if e, ok := m[f.Name()]; ok {
					out[f.Name()] = nativeDefault(f.Type(), e)
				}
			}
			return out
		}
	}
	return def
}

// ToJSON writes a decoded value of schema s (a map[string]any as Decode produces) as a JSON
// object in FromJSON's form, fields in schema order: timestamps as RFC 3339 in UTC with
// milliseconds (microseconds for timestamp-micros), bytes and fixed as base64, unions as the
// plain value when the union is null plus one type and as {"type name": value} otherwise, so
// FromJSON reads the output back to the same value. A value that does not fit s wraps
// ErrInvalidData.
func ToJSON(s *Schema, v map[string]any) ([]byte, error) {
	if s == nil || s.Avro == nil {
		return nil, errors.New("codec: ToJSON: nil schema")
	}
	var errs FieldErrors
	b := appendJSON(nil, s.Avro, v, "", &errs)
	if len(errs) > 0 {
		return nil, &errs
	}
	return b, nil
}

func appendJSON(b []byte, s avro.Schema, v any, path string, errs *FieldErrors) []byte {
	s = derefSchema(s)
	bad := func(msg string) []byte {
		*errs = append(*errs, FieldError{Field: path, Message: msg})
		return append(b, "null"...)
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			return bad(fmt.Sprintf("must be nil, got %T", v))
		}
		return append(b, "null"...)
	case avro.Boolean:
		x, ok := v.(bool)
		if !ok {
			return bad(fmt.Sprintf("must be a bool, got %T", v))
		}
		return strconv.AppendBool(b, x)
	case avro.Int, avro.Long:
		switch x := v.(type) {
		case time.Time:
			switch logicalOf(s) {
			case avro.TimestampMillis:
				return strconv.AppendQuote(b, x.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
			case avro.TimestampMicros:
				return strconv.AppendQuote(b, x.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
			case avro.Date:
				return strconv.AppendQuote(b, x.UTC().Format(time.DateOnly))
			}
		case time.Duration:
			switch logicalOf(s) {
			case avro.TimeMillis:
				return strconv.AppendInt(b, x.Milliseconds(), 10)
			case avro.TimeMicros:
				return strconv.AppendInt(b, x.Microseconds(), 10)
			}
		}
		if i, ok := asInt64(v); ok {
			return strconv.AppendInt(b, i, 10)
		}
		return bad(fmt.Sprintf("must be an integer, got %T", v))
	case avro.Float, avro.Double:
		var f float64
		switch x := v.(type) {
		case float32:
			f = float64(x)
		case float64:
			f = x
		default:
			return bad(fmt.Sprintf("must be a float, got %T", v))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("NaN and infinities have no JSON form")
		}
		bits := 64
		if s.Type() == avro.Float {
			bits = 32
		}
		return strconv.AppendFloat(b, f, 'g', -1, bits)
	case avro.String, avro.Enum:
		x, ok := v.(string)
		if !ok {
			return bad(fmt.Sprintf("must be a string, got %T", v))
		}
		return appendJSONString(b, x)
	case avro.Bytes, avro.Fixed:
		var raw []byte
		switch x := v.(type) {
		case []byte:
			raw = x
		default:
			if arr, ok := fixedBytes(v); ok {
				raw = arr
			} else {
				return bad(fmt.Sprintf("must be bytes, got %T", v))
			}
		}
		return strconv.AppendQuote(b, base64.StdEncoding.EncodeToString(raw))
	case avro.Array:
		arr, ok := v.([]any)
		if !ok {
			return bad(fmt.Sprintf("must be a []any, got %T", v))
		}
		b = append(b, '[')
		for i, e := range arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, s.(*avro.ArraySchema).Items(), e, path+"["+strconv.Itoa(i)+"]", errs)
		}
		return append(b, ']')
	case avro.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return bad(fmt.Sprintf("must be a map[string]any, got %T", v))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, s.(*avro.MapSchema).Values(), m[k], keyPath(path, k), errs)
		}
		return append(b, '}')
	case avro.Record:
		m, ok := v.(map[string]any)
		if !ok {
			return bad(fmt.Sprintf("must be a map[string]any, got %T", v))
		}
		b = append(b, '{')
		for i, f := range s.(*avro.RecordSchema).Fields() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.Name())
			b = append(b, ':')
			fv, ok := m[f.Name()]
			if !ok && f.HasDefault() {
				fv = nativeDefault(f.Type(), f.Default())
			} else if !ok {
				*errs = append(*errs, FieldError{Field: fieldPath(path, f.Name()), Message: "required field is missing"})
				b = append(b, "null"...)
				continue
			}
			b = appendJSON(b, f.Type(), fv, fieldPath(path, f.Name()), errs)
		}
		return append(b, '}')
	case avro.Union:
		return appendUnionJSON(b, s.(*avro.UnionSchema), v, path, errs)
	}
	return bad("schema type " + string(s.Type()) + " is not supported in JSON")
}

func appendUnionJSON(b []byte, us *avro.UnionSchema, v any, path string, errs *FieldErrors) []byte {
	types := us.Types()
	if v == nil {
		for _, t := range types {
			if t.Type() == avro.Null {
				return append(b, "null"...)
			}
		}
		*errs = append(*errs, FieldError{Field: path, Message: "must not be nil"})
		return append(b, "null"...)
	}
	var nonNull []avro.Schema
	for _, t := range types {
		if t.Type() != avro.Null {
			nonNull = append(nonNull, t)
		}
	}
	// A wrapped value {"type name": value}, as hamba decodes most unions.
	branch, val := avro.Schema(nil), v
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, e := range m {
			for _, t := range nonNull {
				if typeName(t) == k {
					branch, val = t, e
				}
			}
		}
	}
	if branch == nil {
		branch = branchFor(nonNull, v)
	}
	if branch == nil {
		*errs = append(*errs, FieldError{Field: path, Message: fmt.Sprintf("%T fits no type of the union", v)})
		return append(b, "null"...)
	}
	if len(nonNull) == 1 {
		return appendJSON(b, branch, val, path, errs)
	}
	name := typeName(branch)
	b = append(b, '{')
	b = appendJSONString(b, name)
	b = append(b, ':')
	b = appendJSON(b, branch, val, keyPath(path, name), errs)
	return append(b, '}')
}

// branchFor picks the union branch a plain decoded Go value belongs to: the branch whose
// type hamba decodes to exactly that Go type (int for int, int64 for long, float32 for float,
// ...), else the first branch the value fits.
func branchFor(branches []avro.Schema, v any) avro.Schema {
	var exact avro.Type
	switch v.(type) {
	case int:
		exact = avro.Int
	case int64:
		exact = avro.Long
	case float32:
		exact = avro.Float
	case float64:
		exact = avro.Double
	case string:
		exact = avro.String
	}
	for _, t := range branches {
		if exact != "" && derefSchema(t).Type() == exact && logicalOf(t) == "" {
			return t
		}
	}
	for _, t := range branches {
		if goValueFits(t, v) {
			return t
		}
	}
	return nil
}

// goValueFits reports whether a plain decoded Go value can belong to branch s.
func goValueFits(s avro.Schema, v any) bool {
	s = derefSchema(s)
	switch v.(type) {
	case bool:
		return s.Type() == avro.Boolean
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		return (s.Type() == avro.Int || s.Type() == avro.Long) && logicalOf(s) == ""
	case time.Time:
		lt := logicalOf(s)
		return lt == avro.TimestampMillis || lt == avro.TimestampMicros || lt == avro.Date
	case time.Duration:
		lt := logicalOf(s)
		return lt == avro.TimeMillis || lt == avro.TimeMicros
	case float32, float64:
		return s.Type() == avro.Float || s.Type() == avro.Double
	case string:
		return s.Type() == avro.String || s.Type() == avro.Enum
	case []byte:
		return s.Type() == avro.Bytes
	case []any:
		return s.Type() == avro.Array
	case map[string]any:
		return s.Type() == avro.Map || s.Type() == avro.Record
	}
	if _, ok := fixedBytes(v); ok {
		return s.Type() == avro.Fixed
	}
	return false
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

// fixedBytes returns the bytes of a fixed value, which hamba takes and gives as a byte array
// ([N]byte).
func fixedBytes(v any) ([]byte, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Array || rv.Type().Elem().Kind() != reflect.Uint8 {
		return nil, false
	}
	b := make([]byte, rv.Len())
	reflect.Copy(reflect.ValueOf(b), rv)
	return b, true
}

func appendJSONString(b []byte, s string) []byte {
	enc, _ := json.Marshal(s) // a string always marshals
	return append(b, enc...)
}
