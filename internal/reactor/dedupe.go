package reactor

import (
	"context"
	"fmt"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Once runs effect for ev unless consumer recorded ev's ce_id in st before, and records it
// after effect succeeded. ran says whether effect ran. An effect error is returned as it is
// (nothing is recorded); a failure to record after the effect is a transient error, so the
// effect may run again on the redelivery: at least once, deduplicated by ce_id. An event
// without ce_id cannot be deduplicated and is handled every time it is delivered.
func Once(ctx context.Context, st *store.Store, consumer string, ev *bus.Event, effect func(ctx context.Context) error) (ran bool, err error) {
	if ev.ID != "" {
		done, err := st.Processed(ctx, consumer, ev.ID)
		if err != nil {
			return false, err
		}
		if done {
			return false, nil
		}
	}
	if err := effect(ctx); err != nil {
		return true, err
	}
	if ev.ID != "" {
		if _, err := st.MarkProcessed(context.WithoutCancel(ctx), consumer, ev.ID); err != nil {
			return true, fmt.Errorf("reactor: %s: record %s as done: %w", consumer, ev.ID, err)
		}
	}
	return true, nil
}
