package codec

import "time"

// Field returns the value of key in a record decoded into a map, as the
// codec produces it, made plain: a nullable union that arrives as
// {"branch": value} is unwrapped and pointers are dereferenced. It is nil
// when the field is absent or null.
func Field(record map[string]any, key string) any {
	v := record[key]
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			v = inner
		}
	}
	switch p := v.(type) {
	case *string:
		if p == nil {
			return nil
		}
		return *p
	case *int:
		if p == nil {
			return nil
		}
		return *p
	case *int32:
		if p == nil {
			return nil
		}
		return *p
	case *int64:
		if p == nil {
			return nil
		}
		return *p
	case *time.Time:
		if p == nil {
			return nil
		}
		return *p
	}
	return v
}
