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

// Routes are the modules' read-model routes the projector serves.
func Routes() []projector.Route {
	return []projector.Route{{Pattern: deployment.QueryPath, Handler: deployment.Query}}
}
