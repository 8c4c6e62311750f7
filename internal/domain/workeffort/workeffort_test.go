package workeffort_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(2 * time.Hour)
	t3 = t0.Add(3 * time.Hour)
)

func ptr[T any](v T) *T { return &v }

// planned is a created work effort at version 1.
func planned() workeffort.State {
	return workeffort.State{
		ID: "we-1", Title: "Ship it", Description: ptr("all of it"), Status: workeffort.StatusPlanned,
		CreatedAt: ptr(t0), Version: 1, Assignee: "ann@example.com", UpdatedAt: ptr(t0),
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		from    workeffort.State
		typ     string
		data    map[string]any
		version int64
		at      time.Time
		want    func(s *workeffort.State) // edits the expected state, starting from `from`
	}{
		{
			name: "created from new", from: workeffort.New("we-1"), typ: workeffort.TypeCreated,
			data: map[string]any{"title": "Ship it", "description": "all of it", "createdAt": t0, "assignee": "ann@example.com"},
			at:   t0.Add(time.Second),
			want: func(s *workeffort.State) {
				s.Title, s.Description, s.Assignee = "Ship it", ptr("all of it"), "ann@example.com"
				s.CreatedAt, s.Version, s.UpdatedAt = ptr(t0), 1, ptr(t0.Add(time.Second))
			},
		},
		{
			name: "created with null unions and no createdAt uses event time", from: workeffort.New("we-1"), typ: workeffort.TypeCreated,
			data: map[string]any{"title": "T", "description": nil, "assignee": nil}, at: t1,
			want: func(s *workeffort.State) { s.Title, s.CreatedAt, s.Version, s.UpdatedAt = "T", ptr(t1), 1, ptr(t1) },
		},
		{
			name: "created with wrapped union and pointer", from: workeffort.New("we-1"), typ: workeffort.TypeCreated,
			data: map[string]any{"title": "T", "description": map[string]any{"string": "d"}, "assignee": ptr("bo@example.com"), "createdAt": t0},
			want: func(s *workeffort.State) {
				s.Title, s.Description, s.Assignee, s.CreatedAt, s.Version = "T", ptr("d"), "bo@example.com", ptr(t0), 1
			},
		},
		{
			name: "created time truncated to milliseconds in UTC", from: workeffort.New("we-1"), typ: workeffort.TypeCreated,
			data: map[string]any{"title": "T", "createdAt": t0.Add(1234567 * time.Nanosecond).In(time.FixedZone("X", 3600))},
			want: func(s *workeffort.State) { s.Title, s.CreatedAt, s.Version = "T", ptr(t0.Add(time.Millisecond)), 1 },
		},
		{
			name: "started", from: planned(), typ: workeffort.TypeStarted,
			data: map[string]any{"title": "Other title", "startedAt": t1}, at: t1,
			want: func(s *workeffort.State) {
				s.Status, s.StartedAt, s.Version, s.UpdatedAt = workeffort.StatusInProgress, ptr(t1), 2, ptr(t1)
			},
		},
		{
			name: "started before created fills the title", from: workeffort.New("we-1"), typ: workeffort.TypeStarted,
			data: map[string]any{"title": "Late", "startedAt": t1},
			want: func(s *workeffort.State) {
				s.Title, s.Status, s.StartedAt, s.Version = "Late", workeffort.StatusInProgress, ptr(t1), 1
			},
		},
		{
			name: "progress v1 fields", from: planned(), typ: workeffort.TypeProgressUpdated,
			data: map[string]any{"oldProgress": 0, "newProgress": 40}, at: t2,
			want: func(s *workeffort.State) { s.Progress, s.Version, s.UpdatedAt = 40, 2, ptr(t2) },
		},
		{
			name: "progress v3 fields", from: planned(), typ: workeffort.TypeProgressUpdated,
			data: map[string]any{"oldProgress": 0, "newProgress": 60, "delta": 60, "formatted": "60%"},
			want: func(s *workeffort.State) { s.Progress, s.Version = 60, 2 },
		},
		{
			name: "progress as JSON number", from: planned(), typ: workeffort.TypeProgressUpdated,
			data: map[string]any{"newProgress": float64(75)},
			want: func(s *workeffort.State) { s.Progress, s.Version = 75, 2 },
		},
		{
			name: "progress as json.Number and int64", from: planned(), typ: workeffort.TypeProgressUpdated,
			data: map[string]any{"newProgress": json.Number("5"), "oldProgress": int64(1)},
			want: func(s *workeffort.State) { s.Progress, s.Version = 5, 2 },
		},
		{
			name: "completed", from: planned(), typ: workeffort.TypeCompleted,
			data: map[string]any{"title": "x", "completedAt": t3, "duration": int64(3), "ticketCount": 2, "assigneeEmail": "cy@example.com"},
			at:   t3,
			want: func(s *workeffort.State) {
				s.Status, s.Progress, s.CompletedAt, s.Assignee = workeffort.StatusCompleted, 100, ptr(t3), "cy@example.com"
				s.Version, s.UpdatedAt = 2, ptr(t3)
			},
		},
		{
			name: "completed without assignee keeps it", from: planned(), typ: workeffort.TypeCompleted,
			data: map[string]any{"title": "x", "completedAt": t3, "assigneeEmail": nil},
			want: func(s *workeffort.State) {
				s.Status, s.Progress, s.CompletedAt, s.Version = workeffort.StatusCompleted, 100, ptr(t3), 2
			},
		},
		{
			name: "completed with epoch millis", from: planned(), typ: workeffort.TypeCompleted,
			data: map[string]any{"completedAt": t3.UnixMilli()},
			want: func(s *workeffort.State) {
				s.Status, s.Progress, s.CompletedAt, s.Version = workeffort.StatusCompleted, 100, ptr(t3), 2
			},
		},
		{
			name: "github issue created", from: planned(), typ: workeffort.TypeGitHubIssueCreated,
			data: map[string]any{"issueNumber": 42, "url": "https://example.com/issues/42"},
			want: func(s *workeffort.State) {
				s.GitHubIssue, s.GitHubIssueURL, s.Version = ptr(42), "https://example.com/issues/42", 2
			},
		},
		{
			name: "github issue closed", from: func() workeffort.State { s := planned(); s.GitHubIssue = ptr(42); return s }(),
			typ: workeffort.TypeGitHubIssueClosed, data: map[string]any{"issueNumber": int32(42)},
			want: func(s *workeffort.State) { s.GitHubIssueClosed, s.Version = true, 2 },
		},
		{
			name: "needs manual sync", from: planned(), typ: workeffort.TypeNeedsManualSync,
			data: map[string]any{"reason": "GitHub issue creation failed", "failedEventType": workeffort.TypeGitHubIssueCreationFailed, "markedAt": t2},
			want: func(s *workeffort.State) {
				s.NeedsManualSync, s.ManualSyncReason, s.Version = true, "GitHub issue creation failed", 2
			},
		},
		{
			name: "creation failed only advances the version", from: planned(), typ: workeffort.TypeGitHubIssueCreationFailed,
			data: map[string]any{"error": "boom", "attempts": 3}, at: t2,
			want: func(s *workeffort.State) { s.Version, s.UpdatedAt = 2, ptr(t2) },
		},
		{
			name: "unknown type only advances the version", from: planned(), typ: "WorkEffort:Renamed",
			data: map[string]any{"title": "ignored"},
			want: func(s *workeffort.State) { s.Version = 2 },
		},
		{
			name: "header version is taken as is", from: planned(), typ: workeffort.TypeProgressUpdated,
			data: map[string]any{"newProgress": 10}, version: 7,
			want: func(s *workeffort.State) { s.Progress, s.Version = 10, 7 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.from
			got, err := workeffort.Apply(tc.from, tc.typ, tc.data, tc.version, tc.at)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := tc.from
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Apply =\n %s\nwant\n %s", show(got), show(want))
			}
			if !reflect.DeepEqual(tc.from, before) {
				t.Errorf("Apply changed its input")
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		data    map[string]any
		version int64
		want    error
	}{
		{name: "same header version", typ: workeffort.TypeStarted, data: map[string]any{}, version: 5, want: workeffort.ErrStale},
		{name: "older header version", typ: workeffort.TypeProgressUpdated, data: map[string]any{"newProgress": 1}, version: 3, want: workeffort.ErrStale},
		{name: "progress missing", typ: workeffort.TypeProgressUpdated, data: map[string]any{"oldProgress": 1}, want: workeffort.ErrInvalidData},
		{name: "progress null", typ: workeffort.TypeProgressUpdated, data: map[string]any{"newProgress": nil}, want: workeffort.ErrInvalidData},
		{name: "progress above 100", typ: workeffort.TypeProgressUpdated, data: map[string]any{"newProgress": 101}, want: workeffort.ErrInvalidData},
		{name: "progress negative", typ: workeffort.TypeProgressUpdated, data: map[string]any{"newProgress": -1}, want: workeffort.ErrInvalidData},
		{name: "progress fractional", typ: workeffort.TypeProgressUpdated, data: map[string]any{"newProgress": 1.5}, want: workeffort.ErrInvalidData},
		{name: "progress string", typ: workeffort.TypeProgressUpdated, data: map[string]any{"newProgress": "50"}, want: workeffort.ErrInvalidData},
		{name: "title not a string", typ: workeffort.TypeCreated, data: map[string]any{"title": 3}, want: workeffort.ErrInvalidData},
		{name: "createdAt a string", typ: workeffort.TypeCreated, data: map[string]any{"title": "x", "createdAt": "yesterday"}, want: workeffort.ErrInvalidData},
		{name: "issue number missing", typ: workeffort.TypeGitHubIssueCreated, data: map[string]any{"url": "u"}, want: workeffort.ErrInvalidData},
		{name: "issue number too big", typ: workeffort.TypeGitHubIssueClosed, data: map[string]any{"issueNumber": int64(1) << 40}, want: workeffort.ErrInvalidData},
		{name: "nil data where a field is required", typ: workeffort.TypeGitHubIssueClosed, data: nil, want: workeffort.ErrInvalidData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := planned()
			from.Version = 5
			got, err := workeffort.Apply(from, tc.typ, tc.data, tc.version, t1)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Apply error = %v, want %v", err, tc.want)
			}
			if !reflect.DeepEqual(got, from) {
				t.Errorf("state changed on error: %s", show(got))
			}
		})
	}
}

// TestFoldHistory folds the seed's life cycle and checks the state after each step, then
// checks that a redelivered event with a version header is refused.
func TestFoldHistory(t *testing.T) {
	type step struct {
		typ  string
		data map[string]any
		ver  int64
		want string // status/progress
	}
	steps := []step{
		{workeffort.TypeCreated, map[string]any{"title": "Ship", "createdAt": t0}, 1, "planned/0"},
		{workeffort.TypeStarted, map[string]any{"title": "Ship", "startedAt": t1}, 2, "in-progress/0"},
		{workeffort.TypeProgressUpdated, map[string]any{"oldProgress": 0, "newProgress": 50, "delta": 50, "formatted": "50%"}, 3, "in-progress/50"},
		{workeffort.TypeCompleted, map[string]any{"title": "Ship", "completedAt": t2}, 4, "completed/100"},
		{workeffort.TypeGitHubIssueCreated, map[string]any{"issueNumber": 7, "url": "u"}, 5, "completed/100"},
	}
	s := workeffort.New("we-9")
	for i, st := range steps {
		var err error
		s, err = workeffort.Apply(s, st.typ, st.data, st.ver, t0)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := s.Status + "/" + itoa(s.Progress); got != st.want || s.Version != st.ver {
			t.Fatalf("step %d (%s): %s v%d, want %s v%d", i, st.typ, got, s.Version, st.want, st.ver)
		}
	}
	if s.CreatedAt == nil || !s.CreatedAt.Equal(t0) || s.StartedAt == nil || !s.StartedAt.Equal(t1) || s.CompletedAt == nil || !s.CompletedAt.Equal(t2) {
		t.Errorf("times = %v %v %v", s.CreatedAt, s.StartedAt, s.CompletedAt)
	}
	if s.GitHubIssue == nil || *s.GitHubIssue != 7 {
		t.Errorf("GitHubIssue = %v, want 7", s.GitHubIssue)
	}
	// A redelivered ProgressUpdated (version 3) must not roll progress back.
	again, err := workeffort.Apply(s, workeffort.TypeProgressUpdated, map[string]any{"newProgress": 50}, 3, t0)
	if !errors.Is(err, workeffort.ErrStale) || again.Progress != 100 {
		t.Errorf("redelivery: progress %d, err %v; want 100, ErrStale", again.Progress, err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func show(s workeffort.State) string { b, _ := json.Marshal(s); return string(b) }
