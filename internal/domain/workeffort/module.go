package workeffort

import (
	"context"
	"embed"
	"io/fs"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Aggregate is the aggregate's name: its event types are "WorkEffort:<Name>".
const Aggregate = "WorkEffort"

//go:embed migrations
var files embed.FS

// Module describes the WorkEffort aggregate to the generic machinery: its upcast steps
// (ProgressUpdated v1 to v3), its fold (Rebuild), its commands (Commands) and its read model
// (ReadModel).
func Module() domain.Module {
	rm := ReadModel()
	return domain.Module{
		Aggregate: Aggregate,
		Upcasts:   Upcasts,
		Fold:      func(st eventstore.Stream) (any, error) { return Rebuild(st) },
		Commands:  Commands(time.Now),
		// The projection's group and the GitHub saga's: both keep their positions in the
		// store, with their state.
		Groups: []topology.Group{
			{Name: Projection, Retry: true, StorePositions: true},
			{Name: githubsaga.Group, Retry: true, StorePositions: true},
		},
		ReadModel: &rm,

		Integrations:  Integrations(),
		Notifications: Notifications(),
	}
}

// ReadModel is the WorkEffort read model: the work_efforts table, the work-efforts projection
// (streamed on GET /v1/stream, rebuildable) and its query routes.
func ReadModel() projector.ReadModel {
	m, _ := fs.Sub(files, "migrations") // a constant path of the embedded tree
	rb := Rebuildable()
	return projector.ReadModel{
		Name:       Projection,
		Migrations: m,
		Projections: []projector.Projection{{
			Name: Projection, Aggregates: []string{Aggregate}, Stream: true,
			Apply: ApplyEvent, Model: Model, Load: loadModel, Rebuild: &rb,
		}},
		Routes: Routes(),
	}
}

// loadModel is the projection's Load, for stream clients that resume.
func loadModel(ctx context.Context, st *store.Store, id string) (any, int64, bool, error) {
	s, found, err := Get(ctx, st, id)
	if err != nil || !found {
		return nil, 0, found, err
	}
	return s, s.Version, true, nil
}

// GitHubSaga is the GitHub saga (group "github", on the WorkEffort events) configured by cfg,
// for projector.Reactors.Domain; the issues it opens carry the work effort's description from
// the read model.
func GitHubSaga(cfg githubsaga.Config) reactor.Spec {
	return reactor.Spec{
		Group:      githubsaga.Group,
		Aggregates: []string{Aggregate},
		New: func(d reactor.Deps) (func(context.Context, []string, reactor.Retry) error, error) {
			if cfg.Description == nil {
				cfg.Description = func(ctx context.Context, id string) (string, error) {
					s, found, err := Get(ctx, d.Store, id)
					if err != nil || !found || s.Description == nil {
						return "", err
					}
					return *s.Description, nil
				}
			}
			s, err := githubsaga.New(cfg, d)
			if err != nil {
				return nil, err
			}
			return s.Run, nil
		},
	}
}
