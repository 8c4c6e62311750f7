package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Event is one event as posted to POST /v1/events.
type Event struct {
	ID              string
	Type            string
	AggregateID     string
	SchemaVersion   int // 0: newest
	ExpectedVersion *int64
	// The data object: as codec.ParseJSON parsed it (parseEvent), or its text (scanEvent).
	Data     *codec.JSONObject
	dataText string
	Metadata Metadata
	// principal is who wrote the event (the pyrite-principal header); set by authorize.
	principal string
}

// Limits of an event's strings.
const (
	maxIDLen          = 256
	maxAggregateIDLen = 1024
)

// Metadata carries the optional tracing ids of an event.
type Metadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	UserID        string `json:"userId,omitempty"`
}

// issues collects the problems of one event; the fields of the at-th event of a batch are
// prefixed "events[at].", those of a single event (at < 0) are not.
type issues struct {
	at   int
	list []FieldIssue
}

func (is *issues) add(field, message string) {
	is.list = append(is.list, FieldIssue{Field: fieldPrefix(is.at) + field, Message: message})
}

// fieldPrefix is what the fields of the at-th event of a batch are named with: "events[at].",
// or "" for a single event (at < 0). It is built only for an answer that names a field.
func fieldPrefix(at int) string {
	if at < 0 {
		return ""
	}
	return "events[" + strconv.Itoa(at) + "]."
}

// parseEvent reads one event from its parsed JSON (codec.ParseJSON's tree) as
// encoding/json would unmarshal the event's text into a map of raw members (the last of
// duplicate keys wins) and each member into its Go type. Every problem is listed, fields
// prefixed as fieldPrefix(at) says.
func parseEvent(v any, at int) (Event, []FieldIssue) {
	var ev Event
	is := issues{at: at}
	obj, ok := v.(*codec.JSONObject)
	if !ok {
		is.add("", "must be a JSON object")
		return ev, is.list
	}
	// The last value of each field; present[f] says whether the field was given at all.
	var (
		vals    [numEventFields]any
		present [numEventFields]bool
		unknown []string
	)
	for _, m := range obj.Members {
		f := eventField(m.Key)
		if f < 0 {
			unknown = append(unknown, m.Key)
			continue
		}
		vals[f], present[f] = m.Value, true
	}
	slices.Sort(unknown)
	for _, k := range slices.Compact(unknown) {
		is.add(k, "unknown field")
	}
	given := func(f int) bool { return present[f] && vals[f] != nil } // null counts as absent
	str := func(f int, required bool) string {
		if !given(f) {
			if required {
				is.add(eventFields[f], "is required")
			}
			return ""
		}
		s, ok := vals[f].(string)
		if !ok {
			is.add(eventFields[f], "must be a string")
			return ""
		}
		if s == "" {
			is.add(eventFields[f], "must not be empty")
		}
		return s
	}
	ev.ID = str(fieldID, false)
	ev.Type = str(fieldType, true)
	ev.AggregateID = str(fieldAggregateID, true)
	if len(ev.ID) > maxIDLen {
		is.add("id", "must be at most 256 characters")
	}
	if len(ev.AggregateID) > maxAggregateIDLen {
		is.add("aggregateId", "must be at most 1024 bytes")
	}
	if given(fieldSchemaVersion) {
		n, ok := jsonInt(vals[fieldSchemaVersion], strconv.IntSize)
		if !ok || n < 1 {
			is.add("schemaVersion", "must be a positive integer")
		}
		ev.SchemaVersion = int(n)
	}
	if given(fieldExpectedVersion) {
		n, ok := jsonInt(vals[fieldExpectedVersion], 64)
		if !ok || n < 0 {
			is.add("expectedVersion", "must be a non-negative integer")
		} else {
			ev.ExpectedVersion = &n
		}
	}
	if !given(fieldData) {
		is.add("data", "is required")
	} else if d, ok := vals[fieldData].(*codec.JSONObject); !ok {
		is.add("data", "must be a JSON object")
	} else {
		ev.Data = d
	}
	if given(fieldMetadata) {
		if !parseMetadata(vals[fieldMetadata], &ev.Metadata) {
			is.add("metadata", "must be an object with optional string fields correlationId, causationId, userId")
		}
	}
	return ev, is.list
}

// The members of an event object, indexes into eventFields.
const (
	fieldID = iota
	fieldType
	fieldAggregateID
	fieldSchemaVersion
	fieldExpectedVersion
	fieldData
	fieldMetadata
	numEventFields
)

var eventFields = [numEventFields]string{"id", "type", "aggregateId", "schemaVersion", "expectedVersion", "data", "metadata"}

// eventField returns the index of the event member named key (exactly), or -1.
func eventField(key string) int {
	switch key {
	case "id":
		return fieldID
	case "type":
		return fieldType
	case "aggregateId":
		return fieldAggregateID
	case "schemaVersion":
		return fieldSchemaVersion
	case "expectedVersion":
		return fieldExpectedVersion
	case "data":
		return fieldData
	case "metadata":
		return fieldMetadata
	}
	return -1
}

// jsonInt reads an integer member as encoding/json unmarshals a number into a Go integer
// of bitSize bits: a number literal without fraction or exponent, in range.
func jsonInt(v any, bitSize int) (int64, bool) {
	lit, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, bitSize)
	return n, err == nil
}

// parseMetadata reads v into m as a json.Decoder with DisallowUnknownFields decodes it into a
// Metadata: an object whose keys match the field names without regard to case (Unicode
// simple folding, as encoding/json), with string or null values (null leaves a field as it
// is). It reports whether v fits.
func parseMetadata(v any, m *Metadata) bool {
	obj, ok := v.(*codec.JSONObject)
	if !ok {
		return false
	}
	fits := true
	for _, e := range obj.Members {
		var dst *string
		switch {
		case strings.EqualFold(e.Key, "correlationId"):
			dst = &m.CorrelationID
		case strings.EqualFold(e.Key, "causationId"):
			dst = &m.CausationID
		case strings.EqualFold(e.Key, "userId"):
			dst = &m.UserID
		default:
			fits = false
			continue
		}
		switch s := e.Value.(type) {
		case nil:
		case string:
			*dst = s
		default:
			fits = false
		}
	}
	return fits
}

// batchEvents returns the events of a batch body as encoding/json would unmarshal it into
// struct{ Events []json.RawMessage `json:"events"` }: members whose key matches "events"
// without regard to case each replace the list (null empties it), and any other kind of
// value, or a body that is not an object, makes the body malformed. ok is false for a
// malformed body or one without a list.
func batchEvents(doc any) (events []any, ok bool) {
	obj, isObj := doc.(*codec.JSONObject)
	if !isObj {
		return nil, false
	}
	for _, m := range obj.Members {
		if m.Key != "events" && !strings.EqualFold(m.Key, "events") {
			continue
		}
		switch v := m.Value.(type) {
		case nil:
			events = nil
		case []any:
			events = v
		default:
			return nil, false
		}
	}
	return events, events != nil
}

// readBody reads a JSON body within limit into buf (empty), answering 415 and 413 itself.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf *bytes.Buffer) ([]byte, *Problem) {
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"the body must be application/json")
	}
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead spare bytes to see the end
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if asMaxBytes(err, &mbe) {
			return nil, problem(http.StatusRequestEntityTooLarge, "too-large", "Request body too large",
				fmt.Sprintf("the body exceeds the limit of %d bytes", limit))
		}
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed request", "reading the body: "+err.Error())
	}
	return buf.Bytes(), nil
}

// parseBody parses a JSON body with codec.ParseJSON, answering 400 when it is not JSON.
func parseBody(raw []byte) (any, *Problem) {
	doc, err := codec.ParseJSON(raw)
	if err != nil {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed JSON", "the body is not valid JSON")
	}
	return doc, nil
}

// singleEvent reads the event of a POST /v1/events body.
func singleEvent(raw []byte) (Event, *Problem) {
	if ev, ok := scanSingle(string(raw)); ok {
		return ev, nil
	}
	doc, p := parseBody(raw)
	if p != nil {
		return Event{}, p
	}
	ev, issues := parseEvent(doc, -1)
	if len(issues) > 0 {
		return ev, problem(http.StatusBadRequest, "malformed", "Malformed event", "the event is missing fields or has fields of the wrong kind", issues...)
	}
	return ev, nil
}

// batchOfEvents reads the events of a POST /v1/events:batch body, at most max, into evs[:0]
// when they are read in place.
func batchOfEvents(raw []byte, max int, evs []Event) ([]Event, *Problem) {
	if evs, ok := scanBatch(string(raw), max, evs); ok {
		return evs, nil
	}
	doc, p := parseBody(raw)
	if p != nil {
		return nil, p
	}
	events, ok := batchEvents(doc)
	if !ok {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed batch", `the body must be {"events": [ ... ]}`,
			FieldIssue{Field: "events", Message: "is required and must be an array of events"})
	}
	if len(events) == 0 {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed batch", "the batch is empty",
			FieldIssue{Field: "events", Message: "must hold at least one event"})
	}
	if len(events) > max {
		return nil, problem(http.StatusRequestEntityTooLarge, "too-large", "Batch too large",
			fmt.Sprintf("a batch holds at most %d events", max))
	}
	evs = make([]Event, len(events))
	var issues []FieldIssue
	for i, v := range events {
		var is []FieldIssue
		evs[i], is = parseEvent(v, i)
		issues = append(issues, is...)
	}
	if len(issues) > 0 {
		return nil, problem(http.StatusBadRequest, "malformed", "Malformed batch", "events are missing fields or have fields of the wrong kind", issues...)
	}
	return evs, nil
}
