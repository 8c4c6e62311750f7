package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldIssue `json:"errors,omitempty"`
	// AggregateID and CurrentVersion are set on a 409 version conflict: the stream and the
	// version it is at, for the caller to read and decide again.
	AggregateID    string `json:"aggregateId,omitempty"`
	CurrentVersion *int64 `json:"currentVersion,omitempty"`

	retryAfter int // seconds; sent as Retry-After when > 0
}

// FieldIssue names one field at fault and what is wrong with it.
type FieldIssue struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

func problem(status int, slug, title, detail string, issues ...FieldIssue) *Problem {
	return &Problem{Type: "urn:pyrite:problem:" + slug, Title: title, Status: status, Detail: detail, Errors: issues}
}

func unavailable(detail string) *Problem {
	p := problem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)
	p.retryAfter = 1
	return p
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
