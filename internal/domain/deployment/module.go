package deployment

import "github.com/pyrite-dev/pyrite/internal/domain"

// Aggregate is the aggregate's name: its event types are "Deployment:<Name>".
const Aggregate = "Deployment"

// Module describes the Deployment aggregate. Its schemas have a single version each, so it has
// no upcast steps; it has no fold and no commands (its commands are the process manager's).
func Module() domain.Module {
	return domain.Module{Aggregate: Aggregate}
}
