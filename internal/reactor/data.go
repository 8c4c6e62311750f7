package reactor

import (
	"math"
	"time"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Data reads the fields of a decoded event (bus.Event.Data). It accepts what the codec
// produces: plain values, pointers, and a nullable union as {"branch": value}.
type Data map[string]any

func (d Data) get(key string) any { return codec.Field(d, key) }

// String returns a string field; ok is false when it is absent, null or not a string.
func (d Data) String(key string) (string, bool) {
	s, ok := d.get(key).(string)
	return s, ok
}

// Int returns an integer field; ok is false when it is absent, null or not an integer.
func (d Data) Int(key string) (int64, bool) {
	switch v := d.get(key).(type) {
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			return int64(v), true
		}
	}
	return 0, false
}

// Time returns a timestamp field (time.Time, or epoch milliseconds); ok is false when it is
// absent, null or neither.
func (d Data) Time(key string) (time.Time, bool) {
	if t, ok := d.get(key).(time.Time); ok {
		return t.UTC(), true
	}
	if ms, ok := d.Int(key); ok {
		return time.UnixMilli(ms).UTC(), true
	}
	return time.Time{}, false
}
