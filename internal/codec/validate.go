package codec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// validate lists the fields of a generic value (maps, slices, Go scalars as FromJSON and
// Decode produce them) that do not fit schema s. Encode runs it on map values before hamba
// encodes them, to name every field at fault rather than the first and to catch what hamba
// would silently truncate; where it is more lenient than hamba, hamba's error is reported.
func validate(s avro.Schema, v any, path string) FieldErrors {
	var errs FieldErrors
	validateInto(s, v, path, &errs)
	return errs
}

func validateInto(s avro.Schema, v any, path string, errs *FieldErrors) {
	s = derefSchema(s)
	bad := func(msg string) { *errs = append(*errs, FieldError{Field: path, Message: msg}) }
	got := func() string {
		if v == nil {
			return "nil"
		}
		return fmt.Sprintf("%T", v)
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			bad("must be nil, got " + got())
		}
	case avro.Boolean:
		if _, ok := v.(bool); !ok {
			bad("must be a bool, got " + got())
		}
	case avro.Int, avro.Long:
		lt := logicalOf(s)
		switch v.(type) {
		case time.Time:
			if lt != avro.TimestampMillis && lt != avro.TimestampMicros && lt != avro.Date {
				bad("must be an integer, got time.Time")
			}
			return
		case time.Duration:
			if lt != avro.TimeMillis && lt != avro.TimeMicros {
				bad("must be an integer, got time.Duration")
			}
			return
		}
		i, ok := asInt64(v)
		switch {
		case !ok && lt == avro.TimestampMillis || !ok && lt == avro.TimestampMicros:
			bad("must be a time.Time or an integer, got " + got())
		case !ok:
			bad("must be an integer, got " + got())
		case s.Type() == avro.Int && (i < -1<<31 || i > 1<<31-1):
			bad("out of range for int")
		case s.Type() == avro.Int && reflect.TypeOf(v).Kind() == reflect.Int64:
			bad("must be an int or int32 for Avro int, got int64")
		}
	case avro.Float, avro.Double:
		switch v.(type) {
		case float32, float64:
		default:
			bad("must be a float, got " + got())
		}
	case avro.String:
		if _, ok := v.(string); !ok {
			bad("must be a string, got " + got())
		}
	case avro.Enum:
		str, ok := v.(string)
		if !ok {
			bad("must be a string, got " + got())
		} else if syms := s.(*avro.EnumSchema).Symbols(); !slices.Contains(syms, str) {
			bad("must be one of " + strings.Join(syms, ", "))
		}
	case avro.Bytes:
		if _, ok := v.([]byte); !ok {
			bad("must be []byte, got " + got())
		}
	case avro.Fixed:
		if b, ok := fixedBytes(v); !ok || len(b) != s.(*avro.FixedSchema).Size() {
			bad(fmt.Sprintf("must be [%d]byte, got %s", s.(*avro.FixedSchema).Size(), got()))
		}
	case avro.Array:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice {
			bad("must be a slice, got " + got())
			return
		}
		for i := range rv.Len() {
			validateInto(s.(*avro.ArraySchema).Items(), rv.Index(i).Interface(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case avro.Map:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
			bad("must be a map with string keys, got " + got())
			return
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			validateInto(s.(*avro.MapSchema).Values(), rv.MapIndex(k).Interface(), keyPath(path, k.String()), errs)
		}
	case avro.Record:
		m, ok := v.(map[string]any)
		if !ok {
			return // structs are checked by the encoder itself
		}
		for _, f := range s.(*avro.RecordSchema).Fields() {
			fv, ok := m[f.Name()]
			if !ok {
				if !f.HasDefault() {
					*errs = append(*errs, FieldError{Field: fieldPath(path, f.Name()), Message: "required field is missing"})
				}
				continue
			}
			validateInto(f.Type(), fv, fieldPath(path, f.Name()), errs)
		}
	case avro.Union:
		validateUnion(s.(*avro.UnionSchema), v, path, errs)
	}
}

func validateUnion(us *avro.UnionSchema, v any, path string, errs *FieldErrors) {
	types := us.Types()
	if v == nil {
		if !us.Nullable() && !slices.ContainsFunc(types, func(t avro.Schema) bool { return t.Type() == avro.Null }) {
			*errs = append(*errs, FieldError{Field: path, Message: "must not be nil"})
		}
		return
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, e := range m {
			for _, t := range types {
				if typeName(t) == k {
					validateInto(t, e, keyPath(path, k), errs)
					return
				}
			}
		}
	}
	if _, ok := v.(map[string]any); ok {
		*errs = append(*errs, FieldError{Field: path, Message: `a record or map in a union must be given as {"<type name>": value}`})
		return
	}
	var names []string
	for _, t := range types {
		if t.Type() == avro.Null {
			continue
		}
		if goValueFits(t, v) {
			var scratch FieldErrors
			validateInto(t, v, path, &scratch)
			if len(scratch) == 0 {
				return
			}
		}
		names = append(names, typeName(t))
	}
	*errs = append(*errs, FieldError{Field: path, Message: fmt.Sprintf("%T fits none of %s", v, strings.Join(names, ", "))})
}
