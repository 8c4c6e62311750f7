// Package modules is the composition root's list of domain modules. Every main that runs the
// aggregates (ingest, upcaster, projector, pyrite dev, the name-only CLI tools) wires the
// generic packages from List through domain.Wire; adding an aggregate is its own package under
// internal/domain and one line here.
package modules

import (
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/reactor"
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

// Reactors configures the modules' sagas and process managers, which need settings of their
// own (cmd/projector fills it from its flags).
type Reactors struct {
	// Deployment runs the deployment process manager when set.
	Deployment *deployment.Config
	// GitHub runs the WorkEffort module's GitHub saga when its Repository is set.
	GitHub githubsaga.Config
}

// Specs returns the reactors r turns on, for projector.Reactors.Domain.
func (r Reactors) Specs() []reactor.Spec {
	var out []reactor.Spec
	if r.GitHub.Enabled() {
		out = append(out, workeffort.GitHubSaga(r.GitHub))
	}
	if r.Deployment != nil {
		out = append(out, deployment.Reactor(*r.Deployment))
	}
	return out
}

// Dev returns the reactors that need no outside service, with their defaults, as pyrite dev
// runs them: the deployment process manager.
func Dev() Reactors { return Reactors{Deployment: &deployment.Config{}} }

// Topology declares profile p's topology for List's aggregates and their groups, with opts
// after them; every main and CLI command that names topics or groups declares it so.
func Topology(p topology.Profile, opts ...topology.Option) (*topology.Topology, error) {
	w, err := Wire()
	if err != nil {
		return nil, err
	}
	return topology.New(p, append(w.Topology(), opts...)...)
}
