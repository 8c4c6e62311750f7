package registry

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors returned by New and by the Go methods of Registry.
var (
	// ErrClosed is returned for a write attempted after Close.
	ErrClosed = errors.New("registry: closed")
	// ErrFenced means another registry instance started with the same
	// transactional id and took over the writer role; this instance keeps
	// serving reads but refuses every write (HTTP 500, error_code 50001).
	ErrFenced = errors.New("registry: fenced by a newer registry instance (one writer per cluster)")
	// ErrTopicLayout is returned by New when the store topic exists with more
	// than one partition: a registry log needs a single, totally ordered partition.
	ErrTopicLayout = errors.New("registry: store topic must have exactly one partition")
	// ErrConflict means a record this instance wrote lost to a conflicting
	// record for the same schema id or subject version written by another
	// instance; the write is answered with 50001 and nothing is reported as done.
	ErrConflict = errors.New("registry: conflicting record in the store topic")
)

// Confluent Schema Registry error codes (the error_code of an error body).
const (
	codeSubjectNotFound             = 40401
	codeVersionNotFound             = 40402
	codeSchemaNotFound              = 40403
	codeSubjectSoftDeleted          = 40404
	codeSubjectNotSoftDeleted       = 40405
	codeVersionSoftDeleted          = 40406
	codeVersionNotSoftDeleted       = 40407
	codeSubjectCompatNotConfigured  = 40408
	codeSubjectModeNotConfigured    = 40409
	codeIncompatibleSchema          = 40901 // Confluent >= 8.0.4; 409 before
	codeUnprocessable               = 422
	codeInvalidSchema               = 42201
	codeInvalidVersion              = 42202
	codeInvalidCompatibilityLevel   = 42203
	codeInvalidMode                 = 42204
	codeOperationNotPermitted       = 42205
	codeReferenceExists             = 42206
	codeInvalidSubject              = 42208
	codeStoreError                  = 50001
	codeNotFound                    = 404
	codeMethodNotAllowed            = 405
	codePayloadTooLarge             = 413
	codeUnsupportedMediaType        = 415
	codeInternal                    = 500
	invalidCompatibilityLevelDetail = "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
	invalidModeDetail               = "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT."
)

// apiError is an error answered with Confluent's body
// {"error_code": Code, "message": Message} and HTTP status Status.
type apiError struct {
	Status  int
	Code    int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// newAPIError derives the HTTP status from a Confluent error code: five-digit
// codes carry their status in the first three digits (40401 -> 404), shorter
// codes are the status itself.
func newAPIError(code int, format string, args ...any) *apiError {
	status := code
	for status >= 1000 {
		status /= 10
	}
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func errSubjectNotFound(subject string) *apiError {
	return newAPIError(codeSubjectNotFound, "Subject '%s' not found.", subject)
}

func errVersionNotFound(version int) *apiError {
	return newAPIError(codeVersionNotFound, "Version %d not found.", version)
}

func errSchemaNotFound() *apiError {
	return newAPIError(codeSchemaNotFound, "Schema not found")
}

func errSchemaIDNotFound(id string) *apiError {
	return newAPIError(codeSchemaNotFound, "Schema %s not found", id)
}

func errInvalidVersion(v string) *apiError {
	return newAPIError(codeInvalidVersion,
		"The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v)
}

func errStore(err error) *apiError {
	return newAPIError(codeStoreError, "Store error: %v", err)
}

func errNotPermitted(format string, args ...any) *apiError {
	return newAPIError(codeOperationNotPermitted, format, args...)
}

func errReadOnly(subject string) *apiError {
	if subject == "" {
		return errNotPermitted("The registry is in read-only mode")
	}
	return errNotPermitted("Subject %s is in read-only mode", subject)
}

// asHTTPStatus reports the status an error body of this code is sent with.
func (e *apiError) status() int {
	if e.Status < 100 || e.Status > 599 {
		return http.StatusInternalServerError
	}
	return e.Status
}
