package workeffort

import (
	"fmt"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
)

// Rebuild folds a WorkEffort stream, read from its first version, into the work effort's
// state: the seed's rebuildWorkEffort, with Apply as its applyEvent. The events' own versions are the aggregate versions, so the state's Version is
// the stream's. An event the fold refuses fails the rebuild, naming its version.
func Rebuild(st eventstore.Stream) (State, error) {
	s := New(st.AggregateID)
	for _, ev := range st.Events {
		n, err := Apply(s, ev.Type, ev.Data, ev.Version, ev.Time)
		if err != nil {
			return s, fmt.Errorf("fold %s version %d (%s): %w", st.AggregateID, ev.Version, ev.Type, err)
		}
		s = n
	}
	return s, nil
}
