package workeffort_test

import (
	"testing"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// TestDescriptionNull: a work effort created with a null description reads back with a nil
// Description (JSON null); one created with "" reads back "".
func TestDescriptionNull(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		p := newStream(0, 0)
		evs := []store.Event{
			p.ev("we-null", workeffort.TypeCreated, map[string]any{"title": "T", "description": nil, "createdAt": base}),
			p.ev("we-empty", workeffort.TypeCreated, map[string]any{"title": "T", "description": "", "createdAt": base}),
		}
		if err := s.ApplyBatch(t.Context(), workeffort.Projection, evs, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		for id, wantNil := range map[string]bool{"we-null": true, "we-empty": false} {
			we, ok, err := workeffort.Get(t.Context(), s, id)
			if err != nil || !ok {
				t.Fatalf("%s: %v %v", id, ok, err)
			}
			if (we.Description == nil) != wantNil || (!wantNil && *we.Description != "") {
				t.Errorf("%s: description %v, want nil %v", id, we.Description, wantNil)
			}
		}
	})
}
