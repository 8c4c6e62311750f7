package upcast_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// FuzzUpcast feeds arbitrary raw values (outside input: any client may write the raw
// topics) through WriterOf and Upcast. Every failure must wrap a known sentinel, and every
// success must decode at the version it claims.
func FuzzUpcast(f *testing.F) {
	fx := newFixture(f, nil)
	f.Add(fx.encode(f, progress, 1, map[string]any{"oldProgress": 1, "newProgress": 2}))
	f.Add(fx.encode(f, progress, 2, map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 3}))
	f.Add(fx.encode(f, thing, 1, map[string]any{"n": 1, "gone": "x"}))
	f.Add([]byte{0, 0, 0, 0, 101, 2})
	f.Add([]byte("{}"))
	known := []error{upcast.ErrNotFramed, upcast.ErrNoPath, upcast.ErrStepFailed, codec.ErrUnknownSchemaID,
		codec.ErrUnknownSubject, codec.ErrUnsupportedSchema, codec.ErrInvalidData}
	f.Fuzz(func(t *testing.T, value []byte) {
		ctx := context.Background()
		res, err := fx.upcast(ctx, value)
		if err != nil {
			for _, k := range known {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("error wraps no known sentinel: %v", err)
		}
		if res.To.Version < res.From.Version {
			t.Fatalf("went down from %+v to %+v", res.From, res.To)
		}
		w, err := fx.up.WriterOf(ctx, res.Value)
		if err != nil || w.Version != res.To {
			t.Fatalf("output written with %+v (%v), want %+v", w.Version, err, res.To)
		}
		m := map[string]any{}
		if _, err := fx.codec.Decode(ctx, res.Value, nil, &m); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
	})
}
