package projector

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// Handler returns the projector's own routes: GET /v1/projections and, with a stream
// attached, GET /v1/stream. The read models' query routes are their modules' (Route).
func (p *Projector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/projections", p.listProjections)
	if p.stream != nil {
		mux.Handle("GET /v1/stream", p.stream)
	}
	return mux
}

func (p *Projector) listProjections(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	sts, err := p.Statuses(ctx)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, http.StatusServiceUnavailable, "Status unavailable", err.Error(), "")
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"projections": sts})
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

// WriteProblem answers an RFC 9457 problem (application/problem+json) of type
// urn:pyrite:problem:<slug of status>; field, when set, names the request field at fault in
// its errors list. Query routes answer their errors with it.
func WriteProblem(w http.ResponseWriter, status int, title, detail, field string) {
	slug := map[int]string{400: "bad-request", 404: "not-found", 500: "store-error", 503: "unavailable"}[status]
	body := map[string]any{"type": "urn:pyrite:problem:" + slug, "title": title, "status": status, "detail": detail}
	if field != "" {
		body["errors"] = []fieldIssue{{Field: field, Message: detail}}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// WriteJSON answers v as application/json with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
