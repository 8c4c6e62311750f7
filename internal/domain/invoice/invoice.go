// Package invoice is a test-only aggregate that proves a team's own aggregate runs through
// Pyrite with nothing but its own package and the one line that lists it: two event types
// (Invoice:Issued, Invoice:Paid), one upcast step (Issued v1 in euros to v2 in cents), one
// projection (the invoices table) with one query route (GET /v1/invoices/{id}). Nothing
// outside tests lists it.
package invoice

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// Names.
const (
	Aggregate  = "Invoice"
	TypeIssued = "Invoice:Issued"
	TypePaid   = "Invoice:Paid"
	// Projection is the projection's name and consumer group.
	Projection = "invoices"
	// QueryPath is the projection's query route.
	QueryPath = "GET /v1/invoices/{id}"
)

//go:embed schemas migrations
var files embed.FS

// IssuedV1 is Invoice:Issued version 1: the amount in euros.
type IssuedV1 struct {
	Customer string  `avro:"customer"`
	Amount   float64 `avro:"amount"`
}

// IssuedV2 is version 2: the amount in cents.
type IssuedV2 struct {
	Customer    string `avro:"customer"`
	AmountCents int64  `avro:"amountCents"`
}

// IssuedV1ToV2 computes amountCents, rounding to the nearest cent.
func IssuedV1ToV2(v IssuedV1) (IssuedV2, error) {
	c := math.Round(v.Amount * 100)
	if math.IsNaN(c) || math.Abs(c) > 1<<53 {
		return IssuedV2{}, fmt.Errorf("invoice: amount %v is not a number of cents", v.Amount)
	}
	return IssuedV2{Customer: v.Customer, AmountCents: int64(c)}, nil
}

// Module describes the Invoice aggregate: its schemas, its upcast step and its read model with
// the consumer group of its projection.
func Module() domain.Module {
	sch, _ := fs.Sub(files, "schemas") // constant paths of the embedded tree
	mig, _ := fs.Sub(files, "migrations")
	return domain.Module{
		Aggregate: Aggregate,
		Schemas:   sch,
		Upcasts:   func(c *upcast.Chain) error { return upcast.Register(c, TypeIssued, 1, IssuedV1ToV2) },
		Groups:    []topology.Group{{Name: Projection, Retry: true, StorePositions: true}},
		ReadModel: &projector.ReadModel{
			Name:        Projection,
			Migrations:  mig,
			Projections: []projector.Projection{{Name: Projection, Aggregates: []string{Aggregate}, Apply: apply}},
			Routes:      []projector.Route{{Pattern: QueryPath, Handler: query}},
		},
	}
}

// apply folds one event into the invoices table.
func apply(tx *store.Tx, ev store.Event) error {
	switch ev.Type {
	case TypeIssued:
		cents, ok := ev.Data["amountCents"].(int64)
		customer, ok2 := ev.Data["customer"].(string)
		if !ok || !ok2 {
			return fmt.Errorf("%w: %s lacks customer or amountCents: %v", store.ErrInvalidEvent, ev.Type, ev.Data)
		}
		_, err := tx.Exec(`INSERT INTO invoices (id, customer, amount_cents, status, version) VALUES ($1, $2, $3, 'issued', $4)
			ON CONFLICT (id) DO NOTHING`, ev.AggregateID, customer, cents, ev.AggregateVersion)
		return err
	case TypePaid:
		at, _ := ev.Data["paidAt"].(time.Time)
		_, err := tx.Exec(`UPDATE invoices SET status = 'paid', paid_at = $1, version = $2 WHERE id = $3`,
			at.UnixMilli(), ev.AggregateVersion, ev.AggregateID)
		return err
	}
	return nil
}

// View is the body of GET /v1/invoices/{id}.
type View struct {
	ID          string     `json:"id"`
	Customer    string     `json:"customer"`
	AmountCents int64      `json:"amountCents"`
	Status      string     `json:"status"`
	PaidAt      *time.Time `json:"paidAt"`
	Version     int64      `json:"version"`
}

func query(rd projector.Reads) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := load(r.Context(), rd.Store, r.PathValue("id"))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			http.Error(w, "no such invoice", http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
		}
	})
}

func load(ctx context.Context, st *store.Store, id string) (View, error) {
	var (
		v    = View{ID: id}
		paid sql.NullInt64
	)
	err := st.QueryRow(ctx, "SELECT customer, amount_cents, status, paid_at, version FROM invoices WHERE id = $1", id).
		Scan(&v.Customer, &v.AmountCents, &v.Status, &paid, &v.Version)
	if paid.Valid {
		t := time.UnixMilli(paid.Int64).UTC()
		v.PaidAt = &t
	}
	return v, err
}
