package deployment

import (
	"context"

	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Aggregate is the aggregate's name: its event types are "Deployment:<Name>".
const Aggregate = "Deployment"

// Module describes the Deployment aggregate. Its schemas have a single version each, so it has
// no upcast steps; it has no fold and no commands (its commands are the process manager's).
// Its read model is the process manager's state of each process (deployment_processes, its
// migrations), served by QueryPath; the process manager (Reactor) writes it, so it has no
// projection.
func Module() domain.Module {
	return domain.Module{
		Aggregate: Aggregate,
		// The process manager's group: its positions live in its own store transactions.
		Groups: []topology.Group{{Name: Group, Retry: true, StorePositions: true}},
		ReadModel: &projector.ReadModel{Name: Group, Migrations: Migrations(),
			Routes: []projector.Route{{Pattern: QueryPath, Handler: Query}}},
	}
}

// Reactor is the deployment process manager (group "deployment", on the WorkEffort and
// Deployment events) configured by cfg, for projector.Reactors.Domain.
func Reactor(cfg Config) reactor.Spec {
	return reactor.Spec{
		Group:      Group,
		Aggregates: []string{"WorkEffort", Aggregate},
		New: func(d reactor.Deps) (func(context.Context, []string, reactor.Retry) error, error) {
			m, err := New(cfg, d)
			if err != nil {
				return nil, err
			}
			return m.Run, nil
		},
	}
}
