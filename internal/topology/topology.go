// Package topology declares, as data, every Kafka topic Pyrite uses and the
// rules that route an event type or schema subject to its topic; Plan
// compares that declaration with a cluster and Apply converges the cluster
// towards it.
//
// Guarantees:
//   - A *Topology is immutable after New and safe for concurrent use.
//   - Routing is total over what is declared: an event type or subject that
//     names no declared aggregate fails with ErrUnknownAggregate, one that has
//     no valid shape fails with ErrUnroutable; nothing falls back to a default
//     topic.
//   - Apply only creates topics, sets declared configs and adds partitions. It
//     never deletes a topic, never shrinks one and never touches a config the
//     declaration does not name; a change it cannot make is reported by Plan
//     as not fixable. Applying the same plan twice is harmless.
package topology

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Fixed topic names from DESIGN.md section 3.
const (
	// IntegrationTopic carries integration events, the public contract.
	IntegrationTopic = "pyrite.integration"
	// SystemTopic carries short-lived system events.
	SystemTopic = "pyrite.system"
	// SchemasTopic is where the schema registry keeps its state.
	SchemasTopic = "_schemas"
	// ReplaysTopic records, per group and partition, the offset where an
	// operator's replay began (compacted, key "<group>/<topic>/<partition>"):
	// reactors with outside side effects do not fire again for records
	// before it.
	ReplaysTopic = "pyrite.replays"
	// ReadersTopic records the reader schema each live consumer group decodes
	// each event type with (compacted, key "<group>|<type>"; see internal/readers).
	ReadersTopic = "pyrite.readers"
)

// Topic config keys the declaration manages. Any other config on a topic is
// left alone.
const (
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigRetentionMs       = "retention.ms"
	ConfigMinInsyncReplicas = "min.insync.replicas"
	ConfigMaxMessageBytes   = "max.message.bytes"
)

// Sentinel errors callers branch on.
var (
	// ErrUnknownAggregate: a well-formed event type, subject or aggregate
	// name that names no declared aggregate.
	ErrUnknownAggregate = errors.New("topology: unknown aggregate")
	// ErrUnroutable: an event type or subject whose shape routes nowhere.
	ErrUnroutable = errors.New("topology: unroutable")
	// ErrUnknownGroup: a consumer group that is not declared (or has no
	// retry topic when one was asked for).
	ErrUnknownGroup = errors.New("topology: unknown group")
	// ErrUnknownProfile: a profile name other than dev or production.
	ErrUnknownProfile = errors.New("topology: unknown profile")
	// ErrInvalidDeclaration: New was given names or settings that cannot
	// make a valid topology (bad names, duplicates, non-positive counts).
	ErrInvalidDeclaration = errors.New("topology: invalid declaration")
)

// Profile names an environment's sizing. Its zero value is not a profile.
type Profile string

// The environments Pyrite runs in.
const (
	// Dev: one broker (pyrite dev's embedded Kafka), replication 1.
	Dev Profile = "dev"
	// Production: replication 3, min.insync.replicas 2, more partitions.
	Production Profile = "production"
)

// ParseProfile accepts "dev" or "production"; anything else is
// ErrUnknownProfile.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(s); p {
	case Dev, Production:
		return p, nil
	}
	return "", fmt.Errorf("%w %q (want dev or production)", ErrUnknownProfile, s)
}

// Settings are the sizes and retentions a profile gives its topics.
type Settings struct {
	// Partitions for every topic except _schemas (always 1). Raw and events
	// topics of an aggregate always share this count.
	Partitions int32
	// ReplicationFactor for every topic; it must not exceed the broker count.
	ReplicationFactor int16
	// MinInsyncReplicas for every topic; at most ReplicationFactor.
	MinInsyncReplicas int
	// MaxMessageBytes is the largest record batch a topic accepts.
	MaxMessageBytes int
	// IntegrationRetention keeps the public integration contract long
	// enough for slow outside consumers.
	IntegrationRetention time.Duration
	// SystemRetention is short: system events are operational noise.
	SystemRetention time.Duration
	// RetryRetention bounds how long a delayed redelivery may wait.
	RetryRetention time.Duration
	// DLQRetention is how long a dead letter stays for an operator.
	DLQRetention time.Duration
}

// Settings returns the profile's sizing, or ErrUnknownProfile.
func (p Profile) Settings() (Settings, error) {
	base := Settings{
		MaxMessageBytes:      1048588, // Kafka's default, stated so drift shows
		IntegrationRetention: 90 * 24 * time.Hour,
		SystemRetention:      24 * time.Hour,
		RetryRetention:       7 * 24 * time.Hour,
		DLQRetention:         30 * 24 * time.Hour,
	}
	switch p {
	case Dev:
		base.Partitions, base.ReplicationFactor, base.MinInsyncReplicas = 3, 1, 1
	case Production:
		base.Partitions, base.ReplicationFactor, base.MinInsyncReplicas = 12, 3, 2
	default:
		return Settings{}, fmt.Errorf("%w %q", ErrUnknownProfile, string(p))
	}
	return base, nil
}

// Role says what a topic is for.
type Role string

// Topic roles, one per row of DESIGN.md section 3.
const (
	RoleRaw         Role = "raw"
	RoleEvents      Role = "events"
	RoleIntegration Role = "integration"
	RoleSystem      Role = "system"
	RoleRetry       Role = "retry"
	RoleDLQ         Role = "dlq"
	RoleSchemas     Role = "schemas"
	RoleReplays     Role = "replays"
	RoleReaders     Role = "readers"
)

// Topic is one declared topic.
type Topic struct {
	Name string
	Role Role
	// Aggregate is the aggregate's Name for raw and events topics, else "".
	Aggregate string
	// Group is the consumer group for retry and dlq topics, else "".
	Group             string
	Partitions        int32
	ReplicationFactor int16
	// Configs are the managed topic configs (the Config* keys), as Kafka
	// spells their values.
	Configs map[string]string
}

func (t Topic) clone() Topic {
	t.Configs = maps.Clone(t.Configs)
	return t
}

// Topology is the declared set of aggregates, groups and topics for one
// profile. Build it with New.
type Topology struct {
	profile    Profile
	settings   Settings
	aggregates []Aggregate
	groups     []Group
	topics     []Topic
	byName     map[string]Aggregate // aggregate Name → aggregate
	byNS       map[string]Aggregate // namespace segment ("workeffort") → aggregate
	bySegment  map[string]Aggregate // topic segment ("work-effort") → aggregate
	groupIdx   map[string]Group
	topicIdx   map[string]int
}

// Option adjusts New.
type Option func(*options)

type options struct {
	aggregates []Aggregate
	groups     []Group
	partitions int32
}

// WithAggregates declares aggregates in addition to those declared before.
func WithAggregates(a ...Aggregate) Option {
	return func(o *options) { o.aggregates = append(o.aggregates, a...) }
}

// DeclareAggregates declares exactly a, replacing those declared before: the mains pass the
// aggregates of their domain modules, so each domain's topics follow from the module list. A
// topology declares no aggregate unless told.
func DeclareAggregates(a ...Aggregate) Option {
	return func(o *options) { o.aggregates = slices.Clone(a) }
}

// WithGroups declares consumer groups in addition to DefaultGroups; each
// gets its pyrite.<group>.dlq topic and, when Retry is set, its
// pyrite.<group>.retry topic.
func WithGroups(g ...Group) Option {
	return func(o *options) { o.groups = append(o.groups, g...) }
}

// WithPartitions overrides the profile's partition count (tests use it to
// keep clusters small, or to declare growth).
func WithPartitions(n int32) Option {
	return func(o *options) { o.partitions = n }
}

// New declares the topology for profile p. It fails with ErrUnknownProfile
// or, when options add invalid or clashing names, ErrInvalidDeclaration
// (every problem joined).
func New(p Profile, opts ...Option) (*Topology, error) {
	s, err := p.Settings()
	if err != nil {
		return nil, err
	}
	o := options{groups: DefaultGroups()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.partitions != 0 {
		s.Partitions = o.partitions
	}
	t := &Topology{
		profile:    p,
		settings:   s,
		aggregates: o.aggregates,
		groups:     o.groups,
		byName:     make(map[string]Aggregate),
		byNS:       make(map[string]Aggregate),
		bySegment:  make(map[string]Aggregate),
		groupIdx:   make(map[string]Group),
		topicIdx:   make(map[string]int),
	}
	if err := t.build(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Topology) build() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidDeclaration}, args...)...))
	}
	s := t.settings
	if s.Partitions < 1 {
		bad("partitions %d < 1", s.Partitions)
	}
	if s.ReplicationFactor < 1 {
		bad("replication factor %d < 1", s.ReplicationFactor)
	}
	if s.MaxMessageBytes < 1 {
		bad("max.message.bytes %d < 1", s.MaxMessageBytes)
	}
	if s.MinInsyncReplicas < 1 || s.MinInsyncReplicas > int(s.ReplicationFactor) {
		bad("min.insync.replicas %d outside 1..%d", s.MinInsyncReplicas, s.ReplicationFactor)
	}
	var aggregates []Aggregate
	for _, a := range t.aggregates {
		if !validAggregateName(a.Name) {
			bad("aggregate name %q is not PascalCase letters and digits", a.Name)
			continue
		}
		if reservedNamespace(a.namespaceSegment()) {
			bad("aggregate name %q is reserved for system or integration events", a.Name)
			continue
		}
		if _, dup := t.byName[a.Name]; dup {
			bad("aggregate %q declared twice", a.Name)
			continue
		}
		if other, dup := t.byNS[a.namespaceSegment()]; dup {
			bad("aggregates %q and %q share namespace %q", other.Name, a.Name, a.Namespace())
			continue
		}
		if other, dup := t.bySegment[a.Segment()]; dup {
			bad("aggregates %q and %q share topic segment %q", other.Name, a.Name, a.Segment())
			continue
		}
		t.byName[a.Name] = a
		t.byNS[a.namespaceSegment()] = a
		t.bySegment[a.Segment()] = a
		aggregates = append(aggregates, a)
	}
	t.aggregates = aggregates
	var groups []Group
	for _, g := range t.groups {
		if !validGroupName(g.Name) {
			bad("group name %q is not lowercase kebab-case", g.Name)
			continue
		}
		if _, dup := t.groupIdx[g.Name]; dup {
			bad("group %q declared twice", g.Name)
			continue
		}
		t.groupIdx[g.Name] = g
		groups = append(groups, g)
	}
	t.groups = groups

	domain := s.configs("delete", -1)
	for _, a := range t.aggregates {
		t.add(&errs, Topic{Name: a.RawTopic(), Role: RoleRaw, Aggregate: a.Name, Configs: domain})
		t.add(&errs, Topic{Name: a.EventsTopic(), Role: RoleEvents, Aggregate: a.Name, Configs: domain})
	}
	t.add(&errs, Topic{Name: IntegrationTopic, Role: RoleIntegration, Configs: s.configs("delete", s.IntegrationRetention.Milliseconds())})
	t.add(&errs, Topic{Name: SystemTopic, Role: RoleSystem, Configs: s.configs("delete", s.SystemRetention.Milliseconds())})
	for _, g := range t.groups {
		if g.Retry {
			t.add(&errs, Topic{Name: g.RetryTopic(), Role: RoleRetry, Group: g.Name, Configs: s.configs("delete", s.RetryRetention.Milliseconds())})
		}
		t.add(&errs, Topic{Name: g.DLQTopic(), Role: RoleDLQ, Group: g.Name, Configs: s.configs("delete", s.DLQRetention.Milliseconds())})
	}
	t.add(&errs, Topic{Name: SchemasTopic, Role: RoleSchemas, Partitions: 1, Configs: s.configs("compact", 0)})
	t.add(&errs, Topic{Name: ReplaysTopic, Role: RoleReplays, Partitions: 1, Configs: s.configs("compact", 0)})
	t.add(&errs, Topic{Name: ReadersTopic, Role: RoleReaders, Partitions: 1, Configs: s.configs("compact", 0)})
	return errors.Join(errs...)
}

// configs builds the managed configs. retentionMs 0 leaves retention.ms
// undeclared (for compacted topics, whose keys must not expire); -1 keeps
// records forever.
func (s Settings) configs(cleanup string, retentionMs int64) map[string]string {
	m := map[string]string{
		ConfigCleanupPolicy:     cleanup,
		ConfigMinInsyncReplicas: strconv.Itoa(s.MinInsyncReplicas),
		ConfigMaxMessageBytes:   strconv.Itoa(s.MaxMessageBytes),
	}
	if retentionMs != 0 {
		m[ConfigRetentionMs] = strconv.FormatInt(retentionMs, 10)
	}
	return m
}

func (t *Topology) add(errs *[]error, tp Topic) {
	if _, dup := t.topicIdx[tp.Name]; dup {
		*errs = append(*errs, fmt.Errorf("%w: topic %q declared twice", ErrInvalidDeclaration, tp.Name))
		return
	}
	if tp.Partitions == 0 {
		tp.Partitions = t.settings.Partitions
	}
	tp.ReplicationFactor = t.settings.ReplicationFactor
	tp.Configs = maps.Clone(tp.Configs)
	t.topicIdx[tp.Name] = len(t.topics)
	t.topics = append(t.topics, tp)
}

// Profile is the profile the topology was declared for.
func (t *Topology) Profile() Profile { return t.profile }

// Settings are the sizes in effect (the profile's, after options).
func (t *Topology) Settings() Settings { return t.settings }

// Aggregates returns the declared aggregates in declaration order.
func (t *Topology) Aggregates() []Aggregate { return slices.Clone(t.aggregates) }

// Groups returns the declared consumer groups in declaration order.
func (t *Topology) Groups() []Group { return slices.Clone(t.groups) }

// Topics returns every declared topic: per aggregate raw then events, then
// pyrite.integration, pyrite.system, per group retry then dlq, then
// _schemas. The result is a copy the caller may change.
func (t *Topology) Topics() []Topic {
	out := make([]Topic, len(t.topics))
	for i, tp := range t.topics {
		out[i] = tp.clone()
	}
	return out
}

// Topic returns the declared topic with that name.
func (t *Topology) Topic(name string) (Topic, bool) {
	i, ok := t.topicIdx[name]
	if !ok {
		return Topic{}, false
	}
	return t.topics[i].clone(), true
}
