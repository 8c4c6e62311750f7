package workeffort

import (
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
)

// Aggregate is the aggregate's name: its event types are "WorkEffort:<Name>".
const Aggregate = "WorkEffort"

// Module describes the WorkEffort aggregate to the generic machinery: its upcast steps
// (ProgressUpdated v1 to v3), its fold (Rebuild) and its commands (Commands).
func Module() domain.Module {
	return domain.Module{
		Aggregate: Aggregate,
		Upcasts:   Upcasts,
		Fold:      func(st eventstore.Stream) (any, error) { return Rebuild(st) },
		Commands:  Commands(time.Now),
	}
}
