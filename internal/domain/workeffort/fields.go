package workeffort

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// fields reads an event's data map and keeps the first problem found.
type fields struct {
	typ  string
	data map[string]any
	err  error
}

func (f *fields) fail(key, msg string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s.%s: %s", ErrInvalidData, f.typ, key, msg)
	}
}

// get returns the field's value with a nullable union unwrapped and pointers dereferenced;
// nil when absent or null.
func (f *fields) get(key string) any { return codec.Field(f.data, key) }

// str returns the string field, or def when absent or null.
func (f *fields) str(key, def string) string {
	switch v := f.get(key).(type) {
	case nil:
		return def
	case string:
		return v
	default:
		f.fail(key, fmt.Sprintf("%T is not a string", v))
		return def
	}
}

// optStr returns the string field, nil when absent or null.
func (f *fields) optStr(key string) *string {
	if f.get(key) == nil {
		return nil
	}
	v := f.str(key, "")
	return &v
}

// int returns the integer field; ok is false when absent or null.
func (f *fields) int(key string) (n int64, ok bool) {
	switch v := f.get(key).(type) {
	case nil:
		return 0, false
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case float64: // a JSON-decoded map
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			f.fail(key, fmt.Sprintf("%v is not an integer", v))
			return 0, false
		}
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			f.fail(key, fmt.Sprintf("%q is not an integer", v.String()))
			return 0, false
		}
		return n, true
	default:
		f.fail(key, fmt.Sprintf("%T is not an integer", v))
		return 0, false
	}
}

// time returns the timestamp field (time.Time, or epoch milliseconds when the logical type was
// not applied); def when absent or null; nil when that is zero too.
func (f *fields) time(key string, def time.Time) *time.Time {
	var t time.Time
	switch v := f.get(key).(type) {
	case nil:
		t = def
	case time.Time:
		t = norm(v)
	default:
		ms, ok := f.int(key)
		if !ok {
			return nil
		}
		t = time.UnixMilli(ms).UTC()
	}
	if t.IsZero() {
		return nil
	}
	return &t
}

// issue returns the required issueNumber field, which must fit an int32 (Avro int).
func (f *fields) issue() *int {
	n, ok := f.int("issueNumber")
	if !ok {
		f.fail("issueNumber", "missing")
		return nil
	}
	if n < 0 || n > math.MaxInt32 {
		f.fail("issueNumber", fmt.Sprintf("%d is out of range", n))
		return nil
	}
	i := int(n)
	return &i
}
