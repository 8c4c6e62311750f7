package topology

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The service principals the ACLs are declared for. Each runs as its own
// Kafka user (by default the service's name; see Users).
const (
	ServiceIngest    = "ingest"
	ServiceUpcaster  = "upcaster"
	ServiceProjector = "projector" // projections, reactors, sagas and process managers
	ServiceRegistry  = "registry"
)

// Services lists the service principals in a fixed order.
func Services() []string {
	return []string{ServiceIngest, ServiceUpcaster, ServiceProjector, ServiceRegistry}
}

// Name prefixes of the consumer groups and transactional ids the services
// use; their ACLs are prefixed so every instance's ids are covered.
const (
	IngestIDPrefix   = "pyrite-ingest"          // group pyrite-ingest, txn ids pyrite-ingest-…
	UpcasterIDPrefix = "pyrite-upcaster"        // group pyrite-upcaster, txn ids pyrite-upcaster-…
	RegistryIDPrefix = "pyrite-schema-registry" // txn id pyrite-schema-registry-_schemas
	// ConfluentRegistryGroup is the group Confluent's schema registry elects its leader in
	// (schema.registry.group.id), for clusters that run it instead of Pyrite's.
	ConfluentRegistryGroup = "schema-registry"
)

// ACL is one ALLOW entry for a principal, from any host. Kafka implies
// Describe from Read and Write, and IdempotentWrite on the cluster from
// Write on any topic, so neither is declared.
type ACL struct {
	Principal string               `json:"principal"` // "User:<name>"
	Resource  kmsg.ACLResourceType `json:"-"`
	Name      string               `json:"name"`
	Pattern   kadm.ACLPattern      `json:"-"`
	Operation kadm.ACLOperation    `json:"-"`
	Service   string               `json:"service"`
}

// MarshalJSON spells the enums as Kafka names them (TOPIC, PREFIXED, WRITE).
func (a ACL) MarshalJSON() ([]byte, error) {
	type plain ACL
	return json.Marshal(struct {
		plain
		Resource  string `json:"resource"`
		Pattern   string `json:"pattern"`
		Operation string `json:"operation"`
	}{plain(a), a.Resource.String(), a.Pattern.String(), a.Operation.String()})
}

func (a ACL) String() string {
	return fmt.Sprintf("%s ALLOW %s %s %s %q", a.Principal, a.Operation, a.Pattern, a.Resource, a.Name)
}

func (a ACL) key() string { return a.String() }

// Users maps a service to its Kafka user name; a service it leaves out is
// the user named as the service.
type Users map[string]string

func (u Users) principal(service string) string {
	return "User:" + cmp.Or(u[service], service)
}

// ACLs is the least-privilege ACL set of every service principal:
//   - ingest: write and read the raw topics (its event store reads them back), write
//     the system and integration topics, its group and transactional ids;
//   - upcaster: read raw, write events and its DLQ, its group and transactional ids;
//   - projector (with its reactors, sagas and process managers): read events and
//     pyrite.replays, read and write each of its groups' retry and DLQ topics, write
//     integration and the raw topics its sagas and process managers emit to, its groups;
//   - registry: read, write, create and describe the configs of _schemas, its
//     transactional id, and Confluent's registry's group.
func (t *Topology) ACLs(users Users) []ACL {
	var out []ACL
	add := func(service string, rt kmsg.ACLResourceType, pattern kadm.ACLPattern, name string, ops ...kadm.ACLOperation) {
		for _, op := range ops {
			out = append(out, ACL{Principal: users.principal(service), Resource: rt, Name: name, Pattern: pattern, Operation: op, Service: service})
		}
	}
	topic := func(service, name string, ops ...kadm.ACLOperation) {
		add(service, kmsg.ACLResourceTypeTopic, kadm.ACLPatternLiteral, name, ops...)
	}
	read, write := kadm.OpRead, kadm.OpWrite
	for _, tp := range t.TopicsWithRole(RoleRaw) {
		topic(ServiceIngest, tp.Name, write, read)
		topic(ServiceUpcaster, tp.Name, read)
		topic(ServiceProjector, tp.Name, write)
	}
	for _, tp := range t.TopicsWithRole(RoleEvents) {
		topic(ServiceUpcaster, tp.Name, write)
		topic(ServiceProjector, tp.Name, read)
	}
	topic(ServiceIngest, SystemTopic, write)
	topic(ServiceIngest, IntegrationTopic, write)
	topic(ServiceProjector, IntegrationTopic, write)
	topic(ServiceProjector, ReplaysTopic, read)
	// Each group records the reader schemas it decodes with; the registry's live-reader mode
	// (pyrite dev --check-readers) follows them.
	topic(ServiceProjector, ReadersTopic, write)
	topic(ServiceRegistry, ReadersTopic, read)
	for _, g := range t.Groups() {
		service := ServiceProjector
		if g.Name == ServiceUpcaster {
			service = ServiceUpcaster
		} else {
			add(service, kmsg.ACLResourceTypeGroup, kadm.ACLPatternLiteral, g.Name, read)
		}
		if g.Retry {
			topic(service, g.RetryTopic(), read, write)
		}
		topic(service, g.DLQTopic(), read, write)
	}
	topic(ServiceRegistry, SchemasTopic, read, write, kadm.OpCreate, kadm.OpDescribeConfigs)
	// Confluent's registry, where it replaces Pyrite's, elects its leader in this group.
	add(ServiceRegistry, kmsg.ACLResourceTypeGroup, kadm.ACLPatternLiteral, ConfluentRegistryGroup, read)

	prefixed := func(service, prefix string) {
		add(service, kmsg.ACLResourceTypeGroup, kadm.ACLPatternPrefixed, prefix, read)
		add(service, kmsg.ACLResourceTypeTransactionalId, kadm.ACLPatternPrefixed, prefix, write)
	}
	prefixed(ServiceIngest, IngestIDPrefix)
	prefixed(ServiceUpcaster, UpcasterIDPrefix)
	add(ServiceRegistry, kmsg.ACLResourceTypeTransactionalId, kadm.ACLPatternPrefixed, RegistryIDPrefix, write)
	return out
}

// ACLPlan is how a cluster's ACLs differ from the declared set: Missing
// entries apply creates; Extra entries (other ALLOWs the service principals
// hold) are reported and left alone, as apply never deletes.
type ACLPlan struct {
	Missing []ACL `json:"missing"`
	Extra   []ACL `json:"extra"`
}

// Empty reports whether the cluster holds exactly the declared set.
func (p ACLPlan) Empty() bool { return len(p.Missing) == 0 && len(p.Extra) == 0 }

// PlanACLs compares the declared ACLs with the cluster's.
func (t *Topology) PlanACLs(ctx context.Context, adm *kadm.Client, users Users) (ACLPlan, error) {
	want := t.ACLs(users)
	principals := map[string]string{}
	for _, a := range want {
		principals[a.Principal] = a.Service
	}
	b := kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
		Allow(slices.Sorted(maps.Keys(principals))...).AllowHosts().Operations(kadm.OpAny)
	res, err := adm.DescribeACLs(ctx, b)
	if err != nil {
		return ACLPlan{}, fmt.Errorf("describe ACLs: %w", err)
	}
	have := map[string]ACL{}
	var errs []error
	for _, r := range res {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("describe ACLs: %w %s", r.Err, r.ErrMessage))
			continue
		}
		for _, d := range r.Described {
			if d.Permission != kmsg.ACLPermissionTypeAllow || (d.Host != "*" && d.Host != "") {
				continue
			}
			a := ACL{Principal: d.Principal, Resource: d.Type, Name: d.Name, Pattern: d.Pattern, Operation: d.Operation, Service: principals[d.Principal]}
			have[a.key()] = a
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ACLPlan{}, err
	}
	var p ACLPlan
	declared := map[string]bool{}
	for _, a := range want {
		declared[a.key()] = true
		if _, ok := have[a.key()]; !ok {
			p.Missing = append(p.Missing, a)
		}
	}
	for k, a := range have {
		if !declared[k] {
			p.Extra = append(p.Extra, a)
		}
	}
	slices.SortFunc(p.Extra, func(a, b ACL) int { return strings.Compare(a.key(), b.key()) })
	return p, nil
}

// ApplyACLs creates the missing ACLs of p. It deletes nothing.
func ApplyACLs(ctx context.Context, adm *kadm.Client, p ACLPlan) error {
	var errs []error
	for _, a := range p.Missing {
		b := kadm.NewACLs().Allow(a.Principal).Operations(a.Operation).ResourcePatternType(a.Pattern)
		switch a.Resource {
		case kmsg.ACLResourceTypeTopic:
			b.Topics(a.Name)
		case kmsg.ACLResourceTypeGroup:
			b.Groups(a.Name)
		case kmsg.ACLResourceTypeTransactionalId:
			b.TransactionalIDs(a.Name)
		case kmsg.ACLResourceTypeCluster:
			b.Clusters()
		default:
			errs = append(errs, fmt.Errorf("create ACL %s: unsupported resource", a))
			continue
		}
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			errs = append(errs, fmt.Errorf("create ACL %s: %w", a, err))
			continue
		}
		for _, r := range res {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("create ACL %s: %w %s", a, r.Err, r.ErrMessage))
			}
		}
	}
	return errors.Join(errs...)
}
