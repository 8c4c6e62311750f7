package workeffort

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// The read model's queries and its routes (DESIGN.md section 5): GET /v1/work-efforts/{id}
// (?minVersion waits for a version) and GET /v1/work-efforts (?status, ?limit, ?cursor).

// Query routes.
const (
	GetPath  = "GET /v1/work-efforts/{id}"
	ListPath = "GET /v1/work-efforts"
)

// List limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Query errors. Callers branch with errors.Is.
var (
	// ErrInvalidCursor means a List cursor was not produced by List.
	ErrInvalidCursor = errors.New("workeffort: invalid cursor")
	// ErrInvalidStatus means a List status filter is not one of the statuses.
	ErrInvalidStatus = errors.New("workeffort: invalid status")
)

// waitBound caps ?minVersion waits.
const waitBound = 10 * time.Second

// Get returns the committed state of one work effort; found is false when no event of it has
// been applied.
func Get(ctx context.Context, st *store.Store, id string) (s State, found bool, err error) {
	s, err = scan(st.QueryRow(ctx, "SELECT "+columns+" FROM "+Table+" WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("workeffort: %q: %w", id, err)
	}
	return s, true, nil
}

// WaitVersion returns the work effort once its committed version is at least minVersion (at
// once if it already is; minVersion <= 0 does not wait), as store.WaitVersion waits: a commit
// of this process wakes it, another process's is seen within the store's poll interval. When
// ctx ends first it returns the last state read (found tells whether it exists) and an error
// wrapping store.ErrVersionNotReached and ctx.Err().
func WaitVersion(ctx context.Context, st *store.Store, id string, minVersion int64) (s State, found bool, err error) {
	err = st.WaitVersion(ctx, waitKey(id), minVersion, func(ctx context.Context) (int64, error) {
		cur, ok, err := Get(ctx, st, id)
		if err != nil {
			return 0, err
		}
		s, found = cur, ok
		return cur.Version, nil
	})
	return s, found, err
}

// List returns up to limit work efforts in ID order, optionally only those with the given
// status ("" for all), starting after cursor ("" for the first page). next is the cursor of
// the following page, "" on the last page. limit <= 0 means DefaultListLimit; above
// MaxListLimit it is capped. An unknown status fails with ErrInvalidStatus, a cursor not made
// by this function with ErrInvalidCursor. Pages are keyset-paginated: rows inserted or changed
// between calls neither shift nor repeat the rows of later pages.
func List(ctx context.Context, st *store.Store, status string, limit int, cursor string) (page []State, next string, err error) {
	switch status {
	case "", StatusPlanned, StatusInProgress, StatusCompleted:
	default:
		return nil, "", fmt.Errorf("%w: %q (want planned, in-progress or completed)", ErrInvalidStatus, status)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var where []string
	var args []any
	if status != "" {
		args = append(args, status)
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	if cursor != "" {
		args = append(args, after)
		where = append(where, "id > $"+strconv.Itoa(len(args)))
	}
	q := "SELECT " + columns + " FROM " + Table
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	q += " ORDER BY id LIMIT $" + strconv.Itoa(len(args))
	rows, err := st.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("workeffort: list: %w", err)
	}
	defer rows.Close()
	page = make([]State, 0, min(limit, 64))
	for rows.Next() {
		s, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("workeffort: list: %w", err)
		}
		page = append(page, s)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("workeffort: list: %w", err)
	}
	if len(page) > limit {
		page = page[:limit]
		next = encodeCursor(page[limit-1].ID)
	}
	return page, next, nil
}

const cursorPrefix = "we1:"

func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + lastID))
}

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return "", fmt.Errorf("%w: %q", ErrInvalidCursor, c)
	}
	return string(b[len(cursorPrefix):]), nil
}

// Routes are the read model's query routes.
func Routes() []projector.Route {
	return []projector.Route{
		{Pattern: GetPath, Handler: getHandler},
		{Pattern: ListPath, Handler: listHandler},
	}
}

// getHandler serves GET /v1/work-efforts/{id} through the projector's read cache.
func getHandler(rd projector.Reads) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var minVersion int64
		if s := r.URL.Query().Get("minVersion"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				projector.WriteProblem(w, http.StatusBadRequest, "Bad minVersion", "minVersion must be a non-negative integer", "minVersion")
				return
			}
			minVersion = n
		}
		cached, epoch, ok := rd.Cache.Get(Aggregate, id)
		if s, isState := cached.(State); ok && isState && s.Version >= minVersion {
			projector.WriteJSON(w, http.StatusOK, s)
			return
		}
		var (
			s     State
			found bool
			err   error
		)
		if minVersion > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), waitBound)
			s, found, err = WaitVersion(ctx, rd.Store, id, minVersion)
			cancel()
		} else {
			s, found, err = Get(r.Context(), rd.Store, id)
		}
		switch {
		case errors.Is(err, store.ErrVersionNotReached):
			w.Header().Set("Retry-After", "1")
			projector.WriteProblem(w, http.StatusServiceUnavailable, "Version not applied yet",
				fmt.Sprintf("version %d of %q was not applied within %s (applied: %d)", minVersion, id, waitBound, s.Version), "minVersion")
			return
		case err != nil:
			projector.WriteProblem(w, http.StatusInternalServerError, "Store error", err.Error(), "")
			return
		case !found:
			projector.WriteProblem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no work effort %q", id), "")
			return
		}
		rd.Cache.Put(Aggregate, id, s, epoch)
		projector.WriteJSON(w, http.StatusOK, s)
	})
}

// listHandler serves GET /v1/work-efforts.
func listHandler(rd projector.Reads) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := 0
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				projector.WriteProblem(w, http.StatusBadRequest, "Bad limit", "limit must be a positive integer", "limit")
				return
			}
			limit = n
		}
		page, next, err := List(r.Context(), rd.Store, q.Get("status"), limit, q.Get("cursor"))
		switch {
		case errors.Is(err, ErrInvalidStatus):
			projector.WriteProblem(w, http.StatusBadRequest, "Bad status", `status must be "planned", "in-progress" or "completed"`, "status")
			return
		case errors.Is(err, ErrInvalidCursor):
			projector.WriteProblem(w, http.StatusBadRequest, "Bad cursor", "cursor was not returned by this API", "cursor")
			return
		case err != nil:
			projector.WriteProblem(w, http.StatusInternalServerError, "Store error", err.Error(), "")
			return
		}
		projector.WriteJSON(w, http.StatusOK, map[string]any{"items": page, "nextCursor": next})
	})
}
