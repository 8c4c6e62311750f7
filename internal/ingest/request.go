package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
)

// Event is one event as posted to POST /v1/events.
type Event struct {
	ID              string
	Type            string
	AggregateID     string
	SchemaVersion   int // 0: newest
	ExpectedVersion *int64
	Data            json.RawMessage
	Metadata        Metadata
}

// Metadata carries the optional tracing ids of an event.
type Metadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	UserID        string `json:"userId,omitempty"`
}

var eventFields = map[string]bool{
	"id": true, "type": true, "aggregateId": true, "schemaVersion": true,
	"expectedVersion": true, "data": true, "metadata": true,
}

// parseEvent reads one event object. Every problem is listed, each field
// prefixed with prefix (e.g. "events[2].").
func parseEvent(raw json.RawMessage, prefix string) (Event, []FieldIssue) {
	var ev Event
	var issues []FieldIssue
	bad := func(field, format string, args ...any) {
		issues = append(issues, FieldIssue{Field: prefix + field, Message: fmt.Sprintf(format, args...)})
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		bad("", "must be a JSON object")
		return ev, issues
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !eventFields[k] {
			bad(k, "unknown field")
		}
	}
	str := func(name string, required bool) string {
		v, ok := obj[name]
		if !ok || isNull(v) {
			if required {
				bad(name, "is required")
			}
			return ""
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			bad(name, "must be a string")
			return ""
		}
		if s == "" {
			bad(name, "must not be empty")
		}
		return s
	}
	ev.ID = str("id", false)
	ev.Type = str("type", true)
	ev.AggregateID = str("aggregateId", true)
	if len(ev.ID) > 256 {
		bad("id", "must be at most 256 characters")
	}
	if len(ev.AggregateID) > 1024 {
		bad("aggregateId", "must be at most 1024 bytes")
	}
	if v, ok := obj["schemaVersion"]; ok && !isNull(v) {
		var n int
		if err := json.Unmarshal(v, &n); err != nil || n < 1 {
			bad("schemaVersion", "must be a positive integer")
		}
		ev.SchemaVersion = n
	}
	if v, ok := obj["expectedVersion"]; ok && !isNull(v) {
		var n int64
		if err := json.Unmarshal(v, &n); err != nil || n < 0 {
			bad("expectedVersion", "must be a non-negative integer")
		} else {
			ev.ExpectedVersion = &n
		}
	}
	if v, ok := obj["data"]; !ok || isNull(v) {
		bad("data", "is required")
	} else if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' {
		bad("data", "must be a JSON object")
	} else {
		ev.Data = v
	}
	if v, ok := obj["metadata"]; ok && !isNull(v) {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev.Metadata); err != nil {
			bad("metadata", "must be an object with optional string fields correlationId, causationId, userId")
		}
	}
	return ev, issues
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// readBody reads a JSON body within limit, answering 415 and 413 itself.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Problem) {
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"the body must be application/json")
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if asMaxBytes(err, &mbe) {
			return nil, problem(http.StatusRequestEntityTooLarge, "too-large", "Request body too large",
				fmt.Sprintf("the body exceeds the limit of %d bytes", limit))
		}
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed request", "reading the body: "+err.Error())
	}
	if !json.Valid(buf.Bytes()) {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed JSON", "the body is not valid JSON")
	}
	return buf.Bytes(), nil
}
