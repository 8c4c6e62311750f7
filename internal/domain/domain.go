// Package domain is the seam between Pyrite's generic machinery and the aggregates it runs.
// An aggregate (WorkEffort, Deployment, a team's own) is one package below internal/domain
// that describes itself as a Module; the mains list the modules (cmd/internal/modules) and
// hand what each generic package needs to it: the upcast steps to the upcaster and the event
// store, the fold and the commands to ingest, the aggregates to the topology, the read models
// to the projector.
//
// The generic packages (store, eventstore, projector, upcast, upcaster, bus, codec, ingest,
// topology) import neither this package nor any module: dependencies point from the modules to
// the machinery, and deps_test.go fails the build's tests when one points back.
//
// The functions here are pure: they read the modules and build values, safe for concurrent use.
package domain

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
	"github.com/pyrite-dev/pyrite/schemas"
)

// Module is everything Pyrite needs to know about one aggregate. Only Aggregate is required;
// a nil field means the aggregate has none of it.
type Module struct {
	// Aggregate is the aggregate's name ("WorkEffort"): its event types are
	// "<Aggregate>:<Name>", its topics pyrite.<kebab-case>.raw/events, its schemas' namespace
	// pyrite.<lowercase> (topology.Aggregate).
	Aggregate string
	// Upcasts registers the aggregate's upcast steps on the chain (upcast.Register).
	Upcasts func(c *upcast.Chain) error
	// Fold folds a stream read from its first version into the aggregate's state, as
	// GET /v1/streams/{id}/state serves it and commands decide on it.
	Fold eventstore.Fold
	// Commands are the commands POST /v1/commands runs against the aggregate, by type.
	Commands map[string]eventstore.Decide
	// Schemas is the aggregate's schema folder when its schemas are not among Pyrite's own
	// (schemas/): files <segment>/<Name>.v<N>.avsc, the segment being the aggregate's
	// namespace segment ("invoice" for Invoice), registered before the stack writes.
	Schemas fs.FS
	// Groups are the consumer groups of the aggregate's projections and reactors, declared in
	// the topology with their dead-letter (and retry) topics.
	Groups []topology.Group
	// ReadModel is the aggregate's read model: its tables' migrations, its projections (each
	// fed by the topology group named like it) and its query routes.
	ReadModel *projector.ReadModel
	// Integrations are the aggregate's public integration events, made from its domain events
	// by the integration reactor (projector.Reactors.Integrations).
	Integrations []reactor.IntegrationRule
	// Notifications are the emails the notification reactor sends about its events
	// (projector.Reactors.Notifications).
	Notifications []reactor.Notification
}

// Chain returns one upcast chain holding every module's steps. Two modules registering a step
// of the same type and version is an error, as upcast.Register says.
func Chain(mods []Module) (*upcast.Chain, error) {
	c := upcast.NewChain()
	var errs []error
	for _, m := range mods {
		if m.Upcasts == nil {
			continue
		}
		if err := m.Upcasts(c); err != nil {
			errs = append(errs, fmt.Errorf("domain %s: upcasts: %w", m.Aggregate, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Aggregates returns the topology's aggregates of the modules, in the modules' order. An
// aggregate listed twice is an error.
func Aggregates(mods []Module) ([]topology.Aggregate, error) {
	seen := map[string]bool{}
	out := make([]topology.Aggregate, 0, len(mods))
	for _, m := range mods {
		if m.Aggregate == "" {
			return nil, errors.New("domain: a module has no aggregate name")
		}
		if seen[m.Aggregate] {
			return nil, fmt.Errorf("domain: aggregate %s is listed twice", m.Aggregate)
		}
		seen[m.Aggregate] = true
		out = append(out, topology.Aggregate{Name: m.Aggregate})
	}
	return out, nil
}

// Folds returns the modules' folds by aggregate name.
func Folds(mods []Module) map[string]eventstore.Fold {
	out := map[string]eventstore.Fold{}
	for _, m := range mods {
		if m.Fold != nil {
			out[m.Aggregate] = m.Fold
		}
	}
	return out
}

// Commands returns the modules' commands by command type; a type two modules declare is an
// error.
func Commands(mods []Module) (map[string]eventstore.Command, error) {
	out := map[string]eventstore.Command{}
	for _, m := range mods {
		for typ, d := range m.Commands {
			if prev, ok := out[typ]; ok {
				return nil, fmt.Errorf("domain: command %s is declared by %s and %s", typ, prev.Aggregate, m.Aggregate)
			}
			if m.Fold == nil {
				return nil, fmt.Errorf("domain: %s declares command %s but has no fold to decide on", m.Aggregate, typ)
			}
			out[typ] = eventstore.Command{Aggregate: m.Aggregate, Fold: m.Fold, Decide: d}
		}
	}
	return out, nil
}

// Wiring is what the mains hand the generic packages, derived from a module list.
type Wiring struct {
	Modules []Module
	// Aggregates are the topology's aggregates (topology.DeclareAggregates).
	Aggregates []topology.Aggregate
	// Chain is every module's upcast steps, for the upcaster and the event store.
	Chain *upcast.Chain
	// Folds and Commands are ingest's (ingest.Config).
	Folds    map[string]eventstore.Fold
	Commands map[string]eventstore.Command
	// Schemas are the modules' own schema files (Module.Schemas), to register and to decode
	// with beside Pyrite's.
	Schemas []schemas.File
	// Groups are the modules' consumer groups (topology.WithGroups).
	Groups []topology.Group
	// ReadModels are the modules' read models (projector.Options.ReadModels).
	ReadModels []projector.ReadModel
	// Integrations and Notifications are the modules' reactor rules
	// (projector.Reactors.Integrations and Notifications).
	Integrations  []reactor.IntegrationRule
	Notifications []reactor.Notification
}

// Wire derives the Wiring of mods, reporting every problem at once.
func Wire(mods []Module) (Wiring, error) {
	w := Wiring{Modules: mods, Folds: Folds(mods)}
	var errs [4]error
	w.Aggregates, errs[0] = Aggregates(mods)
	w.Chain, errs[1] = Chain(mods)
	w.Commands, errs[2] = Commands(mods)
	for _, m := range mods {
		w.Groups = append(w.Groups, m.Groups...)
		w.Integrations = append(w.Integrations, m.Integrations...)
		w.Notifications = append(w.Notifications, m.Notifications...)
		if m.ReadModel != nil {
			w.ReadModels = append(w.ReadModels, *m.ReadModel)
		}
		if m.Schemas == nil {
			continue
		}
		files, err := schemas.LoadSegments(m.Schemas, strings.TrimPrefix(topology.Aggregate{Name: m.Aggregate}.Namespace(), "pyrite."))
		if err != nil {
			errs[3] = errors.Join(errs[3], fmt.Errorf("domain %s: schemas: %w", m.Aggregate, err))
		}
		w.Schemas = append(w.Schemas, files...)
	}
	return w, errors.Join(errs[:]...)
}

// Projection returns the modules' projection named name, and false when none is.
func (w Wiring) Projection(name string) (projector.Projection, bool) {
	for _, rm := range w.ReadModels {
		for _, p := range rm.Projections {
			if p.Name == name {
				return p, true
			}
		}
	}
	return projector.Projection{}, false
}

// Rebuildable returns the names of the modules' projections that pyrite projection rebuild
// can rebuild, in the modules' order.
func (w Wiring) Rebuildable() []string {
	var out []string
	for _, rm := range w.ReadModels {
		for _, p := range rm.Projections {
			if p.Rebuild != nil {
				out = append(out, p.Name)
			}
		}
	}
	return out
}

// Topology returns the topology options that declare the modules' aggregates and groups.
func (w Wiring) Topology() []topology.Option {
	return []topology.Option{topology.DeclareAggregates(w.Aggregates...), topology.WithGroups(w.Groups...)}
}
