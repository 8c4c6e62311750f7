package bus

import (
	"errors"
	"fmt"
	"testing"
)

func TestDecodeReason(t *testing.T) {
	cause := errors.New("x")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Permanent(&reasonError{ReasonBadSchemaIDHeader, cause}), ReasonBadSchemaIDHeader},
		{fmt.Errorf("wrapped: %w", Permanent(&reasonError{ReasonUnknownSchema, cause})), ReasonUnknownSchema},
		{Permanent(cause), ReasonDecode},
	} {
		if got := decodeReason(tc.err); got != tc.want {
			t.Errorf("decodeReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
