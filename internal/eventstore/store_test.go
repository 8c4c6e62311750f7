package eventstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

func created(title string) map[string]any {
	return map[string]any{"title": title, "description": nil, "createdAt": time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), "assignee": nil}
}

func progress(o, n int) map[string]any {
	return map[string]any{"oldProgress": o, "newProgress": n, "delta": n - o, "formatted": "x"}
}

func TestAppendReadAndConflicts(t *testing.T) {
	s := stacktest.Start(t)
	st := openStore(t, s, eventstore.Config{Group: uniqueGroup(t)})
	waitReady(t, st)

	res, err := st.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:Created", "we-1", "id-1", 0, created("Ship"))})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Version != 1 || res[0].Duplicate {
		t.Fatalf("first append: %+v", res[0])
	}
	_, err = st.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:Started", "we-1", "id-2", 0, map[string]any{"title": "Ship", "startedAt": time.Now()})})
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || ce.Current != 1 || ce.Expected != 0 {
		t.Fatalf("stale expected version: %v", err)
	}
	res2, err := st.Append(ctx(t), []eventstore.Pending{
		pending(t, s, "WorkEffort:Started", "we-1", "id-3", 1, map[string]any{"title": "Ship", "startedAt": time.Now()}),
		pending(t, s, "WorkEffort:ProgressUpdated", "we-1", "id-4", 2, progress(0, 40)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res2[0].Version != 2 || res2[1].Version != 3 || res2[1].Offset != res2[0].Offset+1 {
		t.Fatalf("batch: %+v", res2)
	}
	dup, err := st.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:Created", "we-1", "id-1", 0, created("Ship"))})
	if err != nil || !dup[0].Duplicate || dup[0].Offset != res[0].Offset || dup[0].Version != 1 {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
	_, err = st.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", "we-1", "id-1", -1, progress(40, 50))})
	if !errors.Is(err, eventstore.ErrIDConflict) {
		t.Fatalf("id reused for another type: %v", err)
	}
	v, err := st.Version(rawTopic, "we-1")
	if err != nil || v != 3 {
		t.Fatalf("version %d %v", v, err)
	}
	stream, err := st.Read(ctx(t), rawTopic, "we-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(stream.Events) != 3 || stream.Version != 3 {
		t.Fatalf("stream %+v", stream)
	}
	for i, ev := range stream.Events {
		if ev.Version != int64(i+1) {
			t.Errorf("event %d has version %d", i, ev.Version)
		}
	}
	state, err := workeffort.Rebuild(stream)
	if err != nil {
		t.Fatal(err)
	}
	if state.Title != "Ship" || state.Progress != 40 || state.Status != "in-progress" || state.Version != 3 {
		t.Errorf("state %+v", state)
	}
}
