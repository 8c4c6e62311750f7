package workeffort_test

import (
	"fmt"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

func ExampleApply() {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	s := workeffort.New("we-1")
	s, _ = workeffort.Apply(s, workeffort.TypeCreated, map[string]any{"title": "Ship it", "createdAt": at}, 1, at)
	s, _ = workeffort.Apply(s, workeffort.TypeStarted, map[string]any{"title": "Ship it", "startedAt": at.Add(time.Hour)}, 2, at)
	s, _ = workeffort.Apply(s, workeffort.TypeProgressUpdated, map[string]any{"oldProgress": 0, "newProgress": 50}, 3, at)
	fmt.Println(s.Title, s.Status, s.Progress, s.Version)
	_, err := workeffort.Apply(s, workeffort.TypeProgressUpdated, map[string]any{"newProgress": 10}, 3, at)
	fmt.Println(err)
	// Output:
	// Ship it in-progress 50 3
	// workeffort: stale aggregate version: WorkEffort:ProgressUpdated version 3, state already at 3
}
