// Package board is the live board the projector serves at "/": one page,
// embedded in the binary (no build step, nothing fetched from outside at run
// time), that shows the work efforts by status with live progress bars and a
// live event feed from GET /v1/stream, the pipeline's health, and the
// schemas in the registry with the field-level difference between two
// versions and its compatibility verdict.
//
// Besides the page, it serves the two JSON reads the page needs:
// GET /v1/board/pipeline and GET /v1/board/schemas (with .../diff). Its
// handler holds no state of its own and is safe for concurrent use.
package board

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

//go:embed static
var static embed.FS

// Stage is one consumer group of the pipeline, as the health panel shows it.
type Stage struct {
	Name     string // the stage, e.g. "upcaster", "integration"
	Group    string // its Kafka consumer group id; "" for a projection, whose positions are in its store
	DLQTopic string // its dead-letter topic; "" when it has none
}

// Options are what the board reads.
type Options struct {
	// Admin reads group lag and dead-letter counts.
	Admin *kadm.Client
	// Stages are the consumer groups whose lag and DLQ the board shows.
	Stages []Stage
	// Projections returns what GET /v1/projections answers (each
	// projection's positions and lag: projections keep their positions in
	// their store, not in Kafka).
	Projections func(ctx context.Context) (any, error)
	// Registry is the schema registry's base URL.
	Registry string
	// Client calls the registry; nil is a client with a 10s timeout.
	Client *http.Client
}

// Board serves the page and its reads.
type Board struct {
	o Options
}

// New returns a Board reading through o.
func New(o Options) *Board {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Board{o: o}
}

// Handler serves GET / (the page), GET /board/ (its script and style),
// GET /v1/board/pipeline, GET /v1/board/schemas and
// GET /v1/board/schemas/diff.
func (b *Board) Handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, "index.html")
	})
	mux.Handle("GET /board/", http.StripPrefix("/board/", http.FileServerFS(files)))
	mux.HandleFunc("GET /v1/board/pipeline", b.pipeline)
	mux.HandleFunc("GET /v1/board/schemas", b.schemas)
	mux.HandleFunc("GET /v1/board/schemas/diff", b.diff)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeProblem writes an RFC 9457 problem.
func writeProblem(w http.ResponseWriter, status int, slug, title, detail, field string) {
	body := map[string]any{"type": "urn:pyrite:problem:" + slug, "title": title, "status": status, "detail": detail}
	if field != "" {
		body["errors"] = []map[string]string{{"field": field, "message": detail}}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
