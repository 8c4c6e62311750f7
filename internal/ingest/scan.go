package ingest

import (
	"strconv"

	"github.com/pyrite-dev/pyrite/internal/jsonscan"
)

// Most bodies are events in their plain form: known members once each, plain strings,
// integers, and a data object. scanEvent and scanBatch read those in place (jsonscan), with
// each event's data kept as text for codec.AppendJSONText, instead of building a tree with
// codec.ParseJSON and reading it with parseEvent and batchEvents. They accept a body only
// if it is valid and means the same to those (a test checks), and report false for anything
// else, valid or not: a null, an escaped string, a repeated or unknown member, a value
// parseEvent rejects. The general path then reads the body and gives the answer.

// scanEvent reads one event at the scanner's position.
func scanEvent(sc *jsonscan.Scanner) (ev Event, ok bool) {
	var seen [numEventFields]bool
	ok = sc.Members(func(key string) bool {
		f := eventField(key)
		if f < 0 || seen[f] {
			return false
		}
		seen[f] = true
		switch f {
		case fieldID, fieldType, fieldAggregateID:
			s, ok := sc.String()
			if !ok || s == "" {
				return false
			}
			switch f {
			case fieldID:
				ev.ID = s
			case fieldType:
				ev.Type = s
			default:
				ev.AggregateID = s
			}
		case fieldSchemaVersion:
			lit, ok := sc.Number()
			n, err := strconv.ParseInt(lit, 10, strconv.IntSize)
			if !ok || err != nil || n < 1 {
				return false
			}
			ev.SchemaVersion = int(n)
		case fieldExpectedVersion:
			lit, ok := sc.Number()
			n, err := strconv.ParseInt(lit, 10, 64)
			if !ok || err != nil || n < 0 {
				return false
			}
			ev.ExpectedVersion = &n
		case fieldData:
			kind, text := sc.SkipValue()
			if kind != jsonscan.Object {
				return false
			}
			ev.dataText = text
		case fieldMetadata:
			return sc.Members(func(key string) bool {
				s, ok := sc.String()
				switch {
				case !ok:
					return false
				case key == "correlationId":
					ev.Metadata.CorrelationID = s
				case key == "causationId":
					ev.Metadata.CausationID = s
				case key == "userId":
					ev.Metadata.UserID = s
				default:
					return false
				}
				return true
			})
		}
		return true
	})
	return ev, ok && seen[fieldType] && seen[fieldAggregateID] && seen[fieldData] &&
		len(ev.ID) <= maxIDLen && len(ev.AggregateID) <= maxAggregateIDLen
}

// scanSingle reads the body of POST /v1/events.
func scanSingle(text string) (Event, bool) {
	sc := jsonscan.Scanner{Text: text}
	ev, ok := scanEvent(&sc)
	return ev, ok && sc.End()
}

// scanBatch reads the body of POST /v1/events:batch, {"events": [...]} with 1 to max events,
// appending them to evs[:0].
func scanBatch(text string, max int, evs []Event) ([]Event, bool) {
	sc := jsonscan.Scanner{Text: text}
	evs, seen := evs[:0], false
	ok := sc.Members(func(key string) bool {
		if key != "events" || seen || !sc.Consume('[') || sc.Consume(']') {
			return false
		}
		seen = true
		for {
			ev, ok := scanEvent(&sc)
			if !ok || len(evs) == max {
				return false
			}
			evs = append(evs, ev)
			if !sc.Consume(',') {
				return sc.Consume(']')
			}
		}
	})
	return evs, ok && seen && sc.End()
}
