package workeffort_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

// FuzzApply feeds arbitrary JSON-decoded data (outside input: events from any producer) to
// every event type. Apply must never panic, must return the input unchanged on error, and
// must keep status and progress within their domains on success.
func FuzzApply(f *testing.F) {
	f.Add(workeffort.TypeCreated, `{"title":"x","description":null,"createdAt":1700000000000}`, int64(0))
	f.Add(workeffort.TypeProgressUpdated, `{"oldProgress":1,"newProgress":50,"delta":49,"formatted":"50%"}`, int64(3))
	f.Add(workeffort.TypeCompleted, `{"title":"x","completedAt":{"long":5},"assigneeEmail":{"string":"a@b"}}`, int64(2))
	f.Add(workeffort.TypeGitHubIssueCreated, `{"issueNumber":1e10,"url":3}`, int64(0))
	f.Add("WorkEffort:Other", `{}`, int64(-1))
	f.Fuzz(func(t *testing.T, typ, body string, version int64) {
		var data map[string]any
		if json.Unmarshal([]byte(body), &data) != nil {
			return
		}
		from := workeffort.New("we")
		from.Version = 2
		got, err := workeffort.Apply(from, typ, data, version, time.UnixMilli(1))
		if err != nil {
			if !errors.Is(err, workeffort.ErrInvalidData) && !errors.Is(err, workeffort.ErrStale) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if !reflect.DeepEqual(got, from) {
				t.Fatalf("state changed on error")
			}
			return
		}
		switch got.Status {
		case workeffort.StatusPlanned, workeffort.StatusInProgress, workeffort.StatusCompleted:
		default:
			t.Fatalf("status %q", got.Status)
		}
		if got.Progress < 0 || got.Progress > 100 || got.Version <= from.Version {
			t.Fatalf("progress %d version %d", got.Progress, got.Version)
		}
	})
}
