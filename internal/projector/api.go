package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Handler returns the query API of DESIGN.md section 5.
func (p *Projector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/work-efforts/{id}", p.getWorkEffort)
	mux.HandleFunc("GET /v1/work-efforts", p.listWorkEfforts)
	mux.HandleFunc("GET /v1/projections", p.listProjections)
	if p.stream != nil {
		mux.Handle("GET /v1/stream", p.stream)
	}
	return mux
}

func (p *Projector) getWorkEffort(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var minVersion int64
	if s := r.URL.Query().Get("minVersion"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeProblem(w, http.StatusBadRequest, "Bad minVersion", "minVersion must be a non-negative integer", "minVersion")
			return
		}
		minVersion = n
	}
	if st, _, ok := p.cache.get(id); ok && st.Version >= minVersion {
		writeJSON(w, http.StatusOK, st)
		return
	}
	_, epoch, _ := p.cache.get(id)
	var (
		st    workeffort.State
		found bool
		err   error
	)
	if minVersion > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), waitBound)
		st, found, err = p.store.WaitVersion(ctx, id, minVersion)
		cancel()
	} else {
		st, found, err = p.store.WorkEffort(r.Context(), id)
	}
	switch {
	case errors.Is(err, store.ErrVersionNotReached):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "Version not applied yet",
			fmt.Sprintf("version %d of %q was not applied within %s (applied: %d)", minVersion, id, waitBound, st.Version), "minVersion")
		return
	case err != nil:
		writeProblem(w, http.StatusInternalServerError, "Store error", err.Error(), "")
		return
	case !found:
		writeProblem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no work effort %q", id), "")
		return
	}
	p.cache.put(id, st, epoch)
	writeJSON(w, http.StatusOK, st)
}

func (p *Projector) listWorkEfforts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeProblem(w, http.StatusBadRequest, "Bad limit", "limit must be a positive integer", "limit")
			return
		}
		limit = n
	}
	page, next, err := p.store.ListWorkEfforts(r.Context(), q.Get("status"), limit, q.Get("cursor"))
	switch {
	case errors.Is(err, store.ErrInvalidStatus):
		writeProblem(w, http.StatusBadRequest, "Bad status", `status must be "planned", "in-progress" or "completed"`, "status")
		return
	case errors.Is(err, store.ErrInvalidCursor):
		writeProblem(w, http.StatusBadRequest, "Bad cursor", "cursor was not returned by this API", "cursor")
		return
	case err != nil:
		writeProblem(w, http.StatusInternalServerError, "Store error", err.Error(), "")
		return
	}
	if page == nil {
		page = []workeffort.State{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": page, "nextCursor": next})
}

func (p *Projector) listProjections(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	sts, err := p.Statuses(ctx)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "Status unavailable", err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"projections": sts})
}

func sortPartitions(ps []PartitionStatus) {
	slices.SortFunc(ps, func(a, b PartitionStatus) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
}

type fieldIssue struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func writeProblem(w http.ResponseWriter, status int, title, detail, field string) {
	slug := map[int]string{400: "bad-request", 404: "not-found", 500: "store-error", 503: "unavailable"}[status]
	body := map[string]any{"type": "urn:pyrite:problem:" + slug, "title": title, "status": status, "detail": detail}
	if field != "" {
		body["errors"] = []fieldIssue{{Field: field, Message: detail}}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
