package workeffort

import (
	"errors"
	"testing"
)

// FuzzCursor: List cursors come from HTTP query strings. decodeCursor must not panic, must
// reject with ErrInvalidCursor, and must invert encodeCursor.
func FuzzCursor(f *testing.F) {
	f.Add("", "we-1")
	f.Add("d2UxOndlLTE", "")
	f.Add("!!", "\x00\xff")
	f.Fuzz(func(t *testing.T, cursor, id string) {
		if _, err := decodeCursor(cursor); err != nil && !errors.Is(err, ErrInvalidCursor) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		got, err := decodeCursor(encodeCursor(id))
		if err != nil || got != id {
			t.Fatalf("round trip of %q = %q, %v", id, got, err)
		}
	})
}
