package topology

import (
	"fmt"
	"strings"
)

// systemAggregate is the pseudo-aggregate of system events ("System:<Name>").
const systemAggregate = "System"

// integrationNamespace is the Avro namespace segment of integration events.
const integrationNamespace = "integration"

// reservedNamespace reports whether an aggregate may not use ns, the
// lowercased name: it belongs to system or integration events.
func reservedNamespace(ns string) bool {
	return ns == strings.ToLower(systemAggregate) || ns == integrationNamespace
}

// Aggregate is one event-sourced aggregate. Everything else about it is
// derived from Name: for "WorkEffort" the topic segment is "work-effort"
// (pyrite.work-effort.raw, pyrite.work-effort.events), the Avro namespace
// is "pyrite.workeffort" and its event types are "WorkEffort:<Name>".
type Aggregate struct {
	// Name is PascalCase ASCII letters and digits, starting with a capital.
	Name string
}

// Segment is the kebab-case topic segment: "WorkEffort" → "work-effort".
func (a Aggregate) Segment() string { return kebab(a.Name) }

// Namespace is the Avro namespace of the aggregate's records:
// "WorkEffort" → "pyrite.workeffort".
func (a Aggregate) Namespace() string { return "pyrite." + a.namespaceSegment() }

func (a Aggregate) namespaceSegment() string { return strings.ToLower(a.Name) }

// RawTopic is pyrite.<segment>.raw.
func (a Aggregate) RawTopic() string { return "pyrite." + a.Segment() + ".raw" }

// EventsTopic is pyrite.<segment>.events.
func (a Aggregate) EventsTopic() string { return "pyrite." + a.Segment() + ".events" }

// EventType is "<Aggregate>:<name>".
func (a Aggregate) EventType(name string) string { return a.Name + ":" + name }

// Subject is the registry subject (the record's full name) of the event
// called name: "pyrite.workeffort.<name>".
func (a Aggregate) Subject(name string) string { return a.Namespace() + "." + name }

// Group is a consumer group that owns a dead-letter topic and, when Retry
// is set, a retry topic.
type Group struct {
	// Name is lowercase kebab-case, e.g. "work-efforts".
	Name string
	// Retry declares pyrite.<name>.retry for delayed redelivery.
	Retry bool
	// StorePositions: the group's consumers start each partition where their own store
	// says (positions committed with their state), not at the group's Kafka offsets, so
	// moving those offsets (pyrite replay) changes nothing.
	StorePositions bool
}

// DefaultGroups are the consumer groups of the machinery itself, declared by every
// topology: the upcaster (DLQ only: a raw record it cannot upcast is not retried) and the
// notification, webhook and integration reactors. The groups of a domain's projections,
// sagas and process managers come with its module (domain.Module.Groups, WithGroups).
func DefaultGroups() []Group {
	return []Group{
		{Name: "upcaster"},
		{Name: "notifications", Retry: true},
		{Name: "webhooks", Retry: true},
		{Name: "integration", Retry: true},
	}
}

// RetryTopic is pyrite.<group>.retry (declared only when Retry is set).
func (g Group) RetryTopic() string { return "pyrite." + g.Name + ".retry" }

// DLQTopic is pyrite.<group>.dlq.
func (g Group) DLQTopic() string { return "pyrite." + g.Name + ".dlq" }

// Kind is the kind of an event, as in the seed design.
type Kind string

// The three kinds of event.
const (
	// KindDomain: "<Aggregate>:<Name>", kept forever on the aggregate's topics.
	KindDomain Kind = "domain"
	// KindSystem: "System:<Name>", on pyrite.system.
	KindSystem Kind = "system"
	// KindIntegration: dotted lowercase ending in a version, e.g.
	// "work-effort.completed.v1", on pyrite.integration.
	KindIntegration Kind = "integration"
)

// EventType is a parsed event type string.
type EventType struct {
	Kind Kind
	// Aggregate is the aggregate Name for domain events, "System" for
	// system events and "" for integration events.
	Aggregate string
	// Name is the part after the colon for domain and system events and
	// the whole string for integration events.
	Name string
}

// String gives the type back as written.
func (e EventType) String() string {
	if e.Kind == KindIntegration {
		return e.Name
	}
	return e.Aggregate + ":" + e.Name
}

// ParseEventType checks the shape of an event type without consulting any
// declaration: "<Aggregate>:<Name>" with both parts PascalCase,
// "System:<Name>", or an integration type like "work-effort.completed.v1".
// Anything else is ErrUnroutable.
func ParseEventType(s string) (EventType, error) {
	if agg, name, ok := strings.Cut(s, ":"); ok {
		if !validAggregateName(agg) || !validAggregateName(name) {
			return EventType{}, fmt.Errorf("%w: event type %q: want <Aggregate>:<Name>, both PascalCase", ErrUnroutable, s)
		}
		if agg == systemAggregate {
			return EventType{Kind: KindSystem, Aggregate: agg, Name: name}, nil
		}
		return EventType{Kind: KindDomain, Aggregate: agg, Name: name}, nil
	}
	if validIntegrationType(s) {
		return EventType{Kind: KindIntegration, Name: s}, nil
	}
	return EventType{}, fmt.Errorf("%w: event type %q: want <Aggregate>:<Name> or an integration type like work-effort.completed.v1", ErrUnroutable, s)
}

// Aggregate returns the declared aggregate called name ("WorkEffort"), or
// ErrUnknownAggregate.
func (t *Topology) Aggregate(name string) (Aggregate, error) {
	a, ok := t.byName[name]
	if !ok {
		return Aggregate{}, fmt.Errorf("%w %q", ErrUnknownAggregate, name)
	}
	return a, nil
}

// Group returns the declared group called name, or ErrUnknownGroup.
func (t *Topology) Group(name string) (Group, error) {
	g, ok := t.groupIdx[name]
	if !ok {
		return Group{}, fmt.Errorf("%w %q", ErrUnknownGroup, name)
	}
	return g, nil
}

// RawTopic is where a producer writes an event of this type: the
// aggregate's raw topic for a domain event, pyrite.system for a system
// event and pyrite.integration for an integration event (those two have no
// raw/events split). Errors: ErrUnroutable for a malformed type,
// ErrUnknownAggregate for an undeclared aggregate.
func (t *Topology) RawTopic(eventType string) (string, error) {
	et, err := ParseEventType(eventType)
	if err != nil {
		return "", err
	}
	switch et.Kind {
	case KindSystem:
		return SystemTopic, nil
	case KindIntegration:
		return IntegrationTopic, nil
	}
	a, err := t.Aggregate(et.Aggregate)
	if err != nil {
		return "", fmt.Errorf("event type %q: %w", eventType, err)
	}
	return a.RawTopic(), nil
}

// EventsTopic is the upcasted topic of the aggregate called aggregate
// ("WorkEffort" → pyrite.work-effort.events), or ErrUnknownAggregate.
func (t *Topology) EventsTopic(aggregate string) (string, error) {
	a, err := t.Aggregate(aggregate)
	if err != nil {
		return "", err
	}
	return a.EventsTopic(), nil
}

// RetryTopic is pyrite.<group>.retry; ErrUnknownGroup when the group is
// undeclared or declared without retry.
func (t *Topology) RetryTopic(group string) (string, error) {
	g, err := t.Group(group)
	if err != nil {
		return "", err
	}
	if !g.Retry {
		return "", fmt.Errorf("%w %q: declared without a retry topic", ErrUnknownGroup, group)
	}
	return g.RetryTopic(), nil
}

// DLQTopic is pyrite.<group>.dlq, or ErrUnknownGroup.
func (t *Topology) DLQTopic(group string) (string, error) {
	g, err := t.Group(group)
	if err != nil {
		return "", err
	}
	return g.DLQTopic(), nil
}

// AggregateOfSubject maps a domain event's subject
// ("pyrite.workeffort.ProgressUpdated") to its aggregate (WorkEffort).
// System and integration subjects ("pyrite.system.<Name>",
// "pyrite.integration.<Name>") and anything not shaped
// pyrite.<namespace>.<Name> are ErrUnroutable; a well-formed subject in an
// undeclared namespace is ErrUnknownAggregate.
func (t *Topology) AggregateOfSubject(subject string) (Aggregate, error) {
	ns, _, err := splitSubject(subject)
	if err != nil {
		return Aggregate{}, err
	}
	if reservedNamespace(ns) {
		return Aggregate{}, fmt.Errorf("%w: subject %q is a %s event, which has no aggregate", ErrUnroutable, subject, ns)
	}
	a, ok := t.byNS[ns]
	if !ok {
		return Aggregate{}, fmt.Errorf("subject %q: %w in namespace pyrite.%s", subject, ErrUnknownAggregate, ns)
	}
	return a, nil
}

// EventType maps a subject to its event type: "pyrite.workeffort.X" →
// "WorkEffort:X", "pyrite.system.X" → "System:X". Errors as for
// AggregateOfSubject, except that system subjects are accepted
// (integration subjects stay ErrUnroutable: see IntegrationSubject).
func (t *Topology) EventType(subject string) (string, error) {
	ns, name, err := splitSubject(subject)
	if err != nil {
		return "", err
	}
	if ns == strings.ToLower(systemAggregate) {
		return systemAggregate + ":" + name, nil
	}
	a, err := t.AggregateOfSubject(subject)
	if err != nil {
		return "", err
	}
	return a.EventType(name), nil
}

// Subject maps an event type to its registry subject: "WorkEffort:X" →
// "pyrite.workeffort.X", "System:X" → "pyrite.system.X", and an
// integration type to pyrite.integration.<PascalCase of its words>
// ("work-effort.completed.v1" → "pyrite.integration.WorkEffortCompleted";
// the vN is that subject's schema version, see IntegrationSubject).
// Errors: ErrUnroutable for a malformed type, ErrUnknownAggregate for an
// undeclared aggregate.
func (t *Topology) Subject(eventType string) (string, error) {
	et, err := ParseEventType(eventType)
	if err != nil {
		return "", err
	}
	switch et.Kind {
	case KindSystem:
		return "pyrite." + strings.ToLower(systemAggregate) + "." + et.Name, nil
	case KindIntegration:
		subject, _, err := IntegrationSubject(eventType)
		return subject, err
	}
	a, err := t.Aggregate(et.Aggregate)
	if err != nil {
		return "", fmt.Errorf("event type %q: %w", eventType, err)
	}
	return a.Subject(et.Name), nil
}

// IntegrationSubject maps an integration type to the subject and schema
// version that define it: "work-effort.completed.v1" →
// ("pyrite.integration.WorkEffortCompleted", 1). The words of every
// dot-separated part before the version are capitalised and joined. The
// mapping is one way: "a.b-c.v1" and "a-b.c.v1" share a subject, so
// integration types are never derived from subjects. A malformed type is
// ErrUnroutable.
func IntegrationSubject(eventType string) (subject string, version int, err error) {
	if !validIntegrationType(eventType) {
		return "", 0, fmt.Errorf("%w: %q is not an integration type like work-effort.completed.v1", ErrUnroutable, eventType)
	}
	parts := strings.Split(eventType, ".")
	var b strings.Builder
	b.WriteString("pyrite." + integrationNamespace + ".")
	for _, p := range parts[:len(parts)-1] {
		for _, w := range strings.Split(p, "-") {
			b.WriteByte(w[0] - ('a' - 'A')) // validIntegrationType: w[0] is a-z
			b.WriteString(w[1:])
		}
	}
	v := parts[len(parts)-1][1:]
	if len(v) > 9 {
		return "", 0, fmt.Errorf("%w: %q: version too large", ErrUnroutable, eventType)
	}
	for _, c := range []byte(v) {
		version = version*10 + int(c-'0')
	}
	return b.String(), version, nil
}

// TopicsWithRole returns the declared topics with role r, in declaration
// order (e.g. every raw topic, for the upcaster's subscription).
func (t *Topology) TopicsWithRole(r Role) []Topic {
	var out []Topic
	for _, tp := range t.topics {
		if tp.Role == r {
			out = append(out, tp.clone())
		}
	}
	return out
}

// splitSubject splits "pyrite.<ns>.<Name>" where ns is lowercase letters
// and digits and Name is PascalCase.
func splitSubject(subject string) (ns, name string, err error) {
	rest, ok := strings.CutPrefix(subject, "pyrite.")
	if ok {
		ns, name, ok = strings.Cut(rest, ".")
	}
	if !ok || !validNamespace(ns) || !validAggregateName(name) {
		return "", "", fmt.Errorf("%w: subject %q: want pyrite.<namespace>.<Name>", ErrUnroutable, subject)
	}
	return ns, name, nil
}

// kebab turns PascalCase into kebab-case: a hyphen before every capital
// but the first, then lowercase ("WorkEffort" → "work-effort").
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validAggregateName: [A-Z][A-Za-z0-9]*, at most 100 bytes.
func validAggregateName(s string) bool {
	if s == "" || len(s) > 100 || !isUpper(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isUpper(c) && !isLower(c) && !isDigit(c) {
			return false
		}
	}
	return true
}

// validNamespace: [a-z][a-z0-9]*.
func validNamespace(s string) bool {
	if s == "" || len(s) > 100 || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) {
			return false
		}
	}
	return true
}

// validGroupName: lowercase words of letters and digits joined by single
// hyphens, starting with a letter: "work-efforts".
func validGroupName(s string) bool {
	if s == "" || len(s) > 100 || !isLower(s[0]) {
		return false
	}
	for _, w := range strings.Split(s, "-") {
		if w == "" {
			return false
		}
		for i := 0; i < len(w); i++ {
			if c := w[i]; !isLower(c) && !isDigit(c) {
				return false
			}
		}
	}
	return true
}

// validIntegrationType: two or more dot-separated group-name words, the
// last "v<N>" with N ≥ 1 and no leading zero: "work-effort.completed.v1".
func validIntegrationType(s string) bool {
	if len(s) > 200 {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if !validGroupName(p) {
			return false
		}
	}
	v := parts[len(parts)-1]
	if len(v) < 2 || v[0] != 'v' || v[1] == '0' {
		return false
	}
	for i := 1; i < len(v); i++ {
		if !isDigit(v[i]) {
			return false
		}
	}
	return true
}
