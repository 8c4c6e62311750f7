package codec

import (
	"errors"
	"strings"
)

// Sentinel errors. Every error the package returns wraps at most one of them; callers branch
// with errors.Is.
var (
	// ErrBadMagic means a value does not start with the Confluent magic byte 0x00.
	ErrBadMagic = errors.New("codec: bad magic byte")
	// ErrShortValue means a value is shorter than the 5-byte Confluent header.
	ErrShortValue = errors.New("codec: value shorter than the 5-byte header")
	// ErrBadSchemaIDHeader means a record's ValueSchemaIDHeader is neither 0x01 and a 16-byte
	// GUID nor 0x00 and a 4-byte ID. It is permanent.
	ErrBadSchemaIDHeader = errors.New("codec: malformed schema id header")
	// ErrUnknownSchemaID means the registry does not know the schema ID or GUID (HTTP 404 / 40403).
	ErrUnknownSchemaID = errors.New("codec: unknown schema id")
	// ErrUnknownSubject means the registry does not know the subject, or the requested version
	// of it (HTTP 404 / 40401, 40402), or an event type has no subject. It is permanent.
	ErrUnknownSubject = errors.New("codec: unknown subject")
	// ErrRegistryUnavailable means the registry could not be asked: a network error, a
	// timeout, a 5xx answer, or the caller's context ended while waiting. It is transient.
	ErrRegistryUnavailable = errors.New("codec: schema registry unavailable")
	// ErrInvalidData means a value does not fit its schema: a body that cannot be decoded with
	// the writer schema, or a Go or JSON value that cannot be encoded with the schema. The
	// message names the field where it can.
	ErrInvalidData = errors.New("codec: data does not fit the schema")
	// ErrIncompatible means data written with one schema cannot be read with the requested
	// reader schema under Avro schema resolution (e.g. a reader field without a default that
	// the writer lacks, or a different record name).
	ErrIncompatible = errors.New("codec: writer schema cannot be read as reader schema")
	// ErrUnsupportedSchema means a registered schema is not one this package handles: not
	// AVRO, with references, or not parseable.
	ErrUnsupportedSchema = errors.New("codec: unsupported schema")
)

// FieldError is one field at fault. Field is a path from the record root: field names joined
// by ".", array and map elements as [i] and ["key"], e.g. "metadata[\"agent\"]"; "" is the
// whole value.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// FieldErrors lists every field at fault in one value, in document order. A non-empty
// *FieldErrors is returned by FromJSON and, for map values, by Encode; it wraps ErrInvalidData.
type FieldErrors []FieldError

// Error joins the fields' messages.
func (e *FieldErrors) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidData.Error())
	b.WriteString(": ")
	for i, fe := range *e {
		if i > 0 {
			b.WriteString("; ")
		}
		if fe.Field == "" {
			b.WriteString("(value)")
		} else {
			b.WriteString(fe.Field)
		}
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Unwrap returns ErrInvalidData.
func (e *FieldErrors) Unwrap() error { return ErrInvalidData }
