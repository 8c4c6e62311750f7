// Package modules is the composition root's list of domain modules. Every main that runs the
// aggregates (ingest, upcaster, projector, pyrite dev) wires the generic packages from List
// through domain.Wire; adding an aggregate is its own package under internal/domain and one
// line here.
package modules

import (
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// List returns the aggregates Pyrite runs, in the order their topics are declared.
func List() []domain.Module {
	return []domain.Module{
		workeffort.Module(),
		deployment.Module(),
	}
}

// Wire returns List's wiring.
func Wire() (domain.Wiring, error) { return domain.Wire(List()) }

// Reactors are the modules' sagas and process managers with their defaults, as pyrite dev
// runs them (cmd/projector configures them from its flags).
func Reactors() []reactor.Spec {
	return []reactor.Spec{deployment.Reactor(deployment.Config{})}
}

// ReadModels are the modules' read models for projector.Options: their projections
// (Projections), their tables' migrations (StoreOptions) and their query routes (Routes). The
// WorkEffort projection is still built into the projector; a module's own goes here, e.g.
//
//	ps, err := invoice.Projections(top)
//	projs = append(projs, ps...)
//	migrations = append(migrations, store.WithMigrations(invoice.Projection, invoice.Migrations()))
//	routes = append(routes, invoice.Routes()...)
func ReadModels(top *topology.Topology) (projs []projector.Projection, migrations []store.Option, routes []projector.Route, err error) {
	routes = append(routes, projector.Route{Pattern: deployment.QueryPath, Handler: deployment.Query})
	return projs, migrations, routes, nil
}
