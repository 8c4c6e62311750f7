package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Change is one difference between the declaration and a cluster. The
// concrete types are MissingTopic, PartitionDrift, ConfigDrift,
// ReplicationDrift and PairMismatch.
type Change interface {
	// String is one line for an operator.
	String() string
	// Fixable reports whether Apply can make this change.
	Fixable() bool
	change()
}

// MissingTopic: a declared topic the cluster lacks. Apply creates it with
// its declared partitions, replication factor and configs.
type MissingTopic struct {
	Topic Topic
}

func (MissingTopic) change() {}

// Fixable is always true.
func (MissingTopic) Fixable() bool { return true }

func (c MissingTopic) String() string {
	keys := sortedKeys(c.Topic.Configs)
	cfg := make([]string, len(keys))
	for i, k := range keys {
		cfg[i] = k + "=" + c.Topic.Configs[k]
	}
	return fmt.Sprintf("+ create %s: partitions %d, replication %d, %s",
		c.Topic.Name, c.Topic.Partitions, c.Topic.ReplicationFactor, strings.Join(cfg, ", "))
}

// PartitionDrift: the topic's partition count differs from the declaration.
// Apply adds partitions when Actual < Declared; it never shrinks.
type PartitionDrift struct {
	Topic    string
	Role     Role
	Declared int32
	Actual   int32
}

func (PartitionDrift) change() {}

// Fixable is true when partitions are to be added, false for a shrink.
func (c PartitionDrift) Fixable() bool { return c.Actual < c.Declared }

func (c PartitionDrift) String() string {
	if !c.Fixable() {
		return fmt.Sprintf("! %s: %d partitions, declared %d: Kafka cannot remove partitions (not fixable: raise the declaration or recreate the topic)",
			c.Topic, c.Actual, c.Declared)
	}
	s := fmt.Sprintf("~ %s: partitions %d -> %d", c.Topic, c.Actual, c.Declared)
	if c.Role == RoleRaw || c.Role == RoleEvents {
		s += " (moves keys to new partitions: drain the pipeline first or per-aggregate order breaks across the change)"
	}
	return s
}

// ConfigDrift: a managed config whose value differs from the declaration.
// Apply sets it with an incremental alter unless Blocked says why it must
// not.
type ConfigDrift struct {
	Topic    string
	Key      string
	Declared string
	// Actual is the cluster's value; "" when the cluster reports none.
	Actual string
	// Blocked, when set, is why setting the value would break the topic:
	// min.insync.replicas above the topic's replication factor would make
	// every acks=all produce fail.
	Blocked string
}

func (ConfigDrift) change() {}

// Fixable is true unless the change is Blocked.
func (c ConfigDrift) Fixable() bool { return c.Blocked == "" }

func (c ConfigDrift) String() string {
	if c.Blocked != "" {
		return fmt.Sprintf("! %s: %s %q, declared %q (not applied: %s)", c.Topic, c.Key, c.Actual, c.Declared, c.Blocked)
	}
	return fmt.Sprintf("~ %s: %s %q -> %q", c.Topic, c.Key, c.Actual, c.Declared)
}

// ReplicationDrift: partitions replicated fewer or more times than declared.
// Changing it needs a partition reassignment, which Apply does not do.
type ReplicationDrift struct {
	Topic    string
	Declared int16
	Actual   int16
}

func (ReplicationDrift) change() {}

// Fixable is always false.
func (ReplicationDrift) Fixable() bool { return false }

func (c ReplicationDrift) String() string {
	return fmt.Sprintf("! %s: replication factor %d, declared %d (not fixable by apply: reassign partitions)",
		c.Topic, c.Actual, c.Declared)
}

// PairMismatch: an aggregate's raw and events topics have different
// partition counts in the cluster (a missing one counted at the size apply
// would create it), so the upcaster's partition-for-partition
// copy no longer keeps per-aggregate order. Apply fixes it only through the
// PartitionDrift changes of the same plan, which is possible when neither
// topic has more partitions than declared.
type PairMismatch struct {
	Aggregate        string
	Raw, Events      string
	RawPartitions    int32
	EventsPartitions int32
	Declared         int32
}

func (PairMismatch) change() {}

// Fixable reports whether adding partitions up to the declaration makes
// the pair equal.
func (c PairMismatch) Fixable() bool {
	return c.RawPartitions <= c.Declared && c.EventsPartitions <= c.Declared
}

func (c PairMismatch) String() string {
	s := fmt.Sprintf("! %s: %s has %d partitions, %s has %d: per-aggregate order breaks between them",
		c.Aggregate, c.Raw, c.RawPartitions, c.Events, c.EventsPartitions)
	if c.Fixable() {
		return s + fmt.Sprintf(" (apply raises both to %d)", c.Declared)
	}
	return s + fmt.Sprintf(" (not fixable: a topic exceeds the declared %d)", c.Declared)
}

// Plan is the ordered list of differences found by Topology.Plan: per
// declared topic in declaration order, then the raw/events pairs.
type Plan struct {
	Changes []Change
}

// Empty reports whether the cluster matches the declaration.
func (p Plan) Empty() bool { return len(p.Changes) == 0 }

// Fixable returns the changes Apply can make.
func (p Plan) Fixable() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Fixable() {
			out = append(out, c)
		}
	}
	return out
}

// Unfixable returns the changes Apply leaves for an operator.
func (p Plan) Unfixable() []Change {
	var out []Change
	for _, c := range p.Changes {
		if !c.Fixable() {
			out = append(out, c)
		}
	}
	return out
}

// String is one change per line, or "no changes".
func (p Plan) String() string {
	if p.Empty() {
		return "no changes"
	}
	lines := make([]string, len(p.Changes))
	for i, c := range p.Changes {
		lines[i] = c.String()
	}
	return strings.Join(lines, "\n")
}

// observed is what the cluster says about one declared topic.
type observed struct {
	exists      bool
	partitions  int32
	replication int16 // smallest replica count over the partitions
	configs     map[string]string
}

// Plan compares the declaration with the cluster behind adm and lists every
// difference: missing topics, partition-count drift, replication drift,
// drift of the managed configs, and raw/events pairs whose partition counts
// differ. Configs the declaration does not name are ignored. It reads only
// (metadata and DescribeConfigs requests; no topic is auto-created). It
// fails when the cluster cannot be asked, or answers a topic with an error
// other than "unknown topic".
func (t *Topology) Plan(ctx context.Context, adm *kadm.Client) (Plan, error) {
	obs, err := t.observe(ctx, adm)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	for _, tp := range t.topics {
		o := obs[tp.Name]
		if !o.exists {
			p.Changes = append(p.Changes, MissingTopic{Topic: tp.clone()})
			continue
		}
		if o.partitions != tp.Partitions {
			p.Changes = append(p.Changes, PartitionDrift{Topic: tp.Name, Role: tp.Role, Declared: tp.Partitions, Actual: o.partitions})
		}
		if o.replication != tp.ReplicationFactor {
			p.Changes = append(p.Changes, ReplicationDrift{Topic: tp.Name, Declared: tp.ReplicationFactor, Actual: o.replication})
		}
		for _, k := range sortedKeys(tp.Configs) {
			want := tp.Configs[k]
			if got, ok := o.configs[k]; !ok || !sameConfigValue(k, got, want) {
				c := ConfigDrift{Topic: tp.Name, Key: k, Declared: want, Actual: got}
				if n, err := strconv.Atoi(want); k == ConfigMinInsyncReplicas && err == nil && n > int(o.replication) {
					c.Blocked = fmt.Sprintf("the topic's replication factor %d is below it, so acks=all produces would fail", o.replication)
				}
				p.Changes = append(p.Changes, c)
			}
		}
	}
	// Pairs last, counting a missing topic at the size apply creates it.
	for _, a := range t.aggregates {
		raw, events := obs[a.RawTopic()], obs[a.EventsTopic()]
		if !raw.exists && !events.exists {
			continue
		}
		declared := t.topics[t.topicIdx[a.RawTopic()]].Partitions
		rawN, eventsN := raw.partitions, events.partitions
		if !raw.exists {
			rawN = declared
		}
		if !events.exists {
			eventsN = declared
		}
		if rawN != eventsN {
			p.Changes = append(p.Changes, PairMismatch{
				Aggregate: a.Name, Raw: a.RawTopic(), Events: a.EventsTopic(),
				RawPartitions: rawN, EventsPartitions: eventsN, Declared: declared,
			})
		}
	}
	return p, nil
}

func (t *Topology) observe(ctx context.Context, adm *kadm.Client) (map[string]observed, error) {
	names := make([]string, len(t.topics))
	for i, tp := range t.topics {
		names[i] = tp.Name
	}
	// kadm answers metadata from a cache up to 5s old unless authorized
	// operations are asked for; a plan right after an apply must see the
	// topics that apply just created, so bypass the cache.
	details, err := adm.ListTopicsWithInternal(kadm.WithAuthorizedOps(ctx), names...)
	if err != nil {
		return nil, fmt.Errorf("topology: list topics: %w", err)
	}
	obs := make(map[string]observed, len(names))
	var existing []string
	var errs []error
	for _, name := range names {
		d, ok := details[name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if d.Err != nil {
			errs = append(errs, fmt.Errorf("topology: describe %s: %w", name, d.Err))
			continue
		}
		o := observed{exists: true, partitions: int32(len(d.Partitions)), replication: -1}
		for _, pd := range d.Partitions {
			if r := int16(len(pd.Replicas)); o.replication < 0 || r < o.replication {
				o.replication = r
			}
		}
		obs[name] = o
		existing = append(existing, name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(existing) == 0 {
		return obs, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return nil, fmt.Errorf("topology: describe configs: %w", err)
	}
	for _, rc := range rcs {
		o, ok := obs[rc.Name]
		if !ok {
			continue
		}
		if rc.Err != nil {
			errs = append(errs, fmt.Errorf("topology: describe configs of %s: %w", rc.Name, rc.Err))
			continue
		}
		o.configs = make(map[string]string, len(rc.Configs))
		for _, c := range rc.Configs {
			if c.Value != nil {
				o.configs[c.Key] = *c.Value
			}
		}
		obs[rc.Name] = o
	}
	return obs, errors.Join(errs...)
}

// sameConfigValue compares config values as Kafka means them: numbers by
// value ("0100" is 100), cleanup.policy as an unordered list.
func sameConfigValue(key, got, want string) bool {
	got, want = strings.TrimSpace(got), strings.TrimSpace(want)
	if got == want {
		return true
	}
	if key == ConfigCleanupPolicy {
		return slices.Equal(listSet(got), listSet(want))
	}
	g, err1 := strconv.ParseInt(got, 10, 64)
	w, err2 := strconv.ParseInt(want, 10, 64)
	return err1 == nil && err2 == nil && g == w
}

func listSet(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
