package board

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// StageHealth is one stage in GET /v1/board/pipeline.
type StageHealth struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	// Lag is the group's committed lag summed over its partitions, -1 when
	// the group has committed nothing yet; LagByTopic splits it.
	Lag        int64            `json:"lag"`
	LagByTopic map[string]int64 `json:"lagByTopic,omitempty"`
	// Committed is the sum of the group's committed offsets: its rate is
	// the stage's throughput (the upcaster rate on the board).
	Committed int64  `json:"committed"`
	State     string `json:"state,omitempty"`
	DLQTopic  string `json:"dlqTopic,omitempty"`
	// DLQ counts the records on the dead-letter topic (end minus start
	// offsets, so redrive markers count too).
	DLQ   int64  `json:"dlq"`
	Error string `json:"error,omitempty"`
}

// Pipeline is GET /v1/board/pipeline.
type Pipeline struct {
	At          time.Time     `json:"at"`
	Stages      []StageHealth `json:"stages"`
	Projections any           `json:"projections"`
}

func (b *Board) pipeline(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	out := Pipeline{At: time.Now().UTC(), Stages: make([]StageHealth, 0, len(b.o.Stages))}
	groups := make([]string, 0, len(b.o.Stages))
	var dlqs []string
	for _, s := range b.o.Stages {
		if s.Group != "" {
			groups = append(groups, s.Group)
		}
		if s.DLQTopic != "" {
			dlqs = append(dlqs, s.DLQTopic)
		}
	}
	lags, err := b.o.Admin.Lag(ctx, groups...)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "Lag unavailable", err.Error(), "")
		return
	}
	ends, eerr := b.o.Admin.ListEndOffsets(ctx, dlqs...)
	starts, serr := b.o.Admin.ListStartOffsets(ctx, dlqs...)
	for _, s := range b.o.Stages {
		h := StageHealth{Name: s.Name, Group: s.Group, DLQTopic: s.DLQTopic, Lag: -1}
		if l, ok := lags[s.Group]; ok {
			h.State = l.State
			if errors.Is(l.Error(), kerr.GroupIDNotFound) {
				h.State = "not running"
			} else if l.Error() != nil {
				h.Error = l.Error().Error()
			} else if !l.Lag.IsEmpty() {
				h.Lag = l.Lag.Total()
				h.LagByTopic = map[string]int64{}
				for topic, tl := range l.Lag.TotalByTopic() {
					h.LagByTopic[topic] = tl.Lag
				}
				for _, ml := range l.Lag.Sorted() {
					h.Committed += max(ml.Commit.At, 0)
				}
			}
		}
		if s.DLQTopic != "" && eerr == nil && serr == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Topic == s.DLQTopic {
					h.DLQ += o.Offset
				}
			})
			starts.Each(func(o kadm.ListedOffset) {
				if o.Topic == s.DLQTopic {
					h.DLQ -= o.Offset
				}
			})
		}
		out.Stages = append(out.Stages, h)
	}
	if b.o.Projections != nil {
		if out.Projections, err = b.o.Projections(ctx); err != nil {
			out.Projections = map[string]string{"error": err.Error()}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
