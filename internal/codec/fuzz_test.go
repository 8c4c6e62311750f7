package codec_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// FuzzDecode: any bytes decode to a value or an error, never a panic; a decoded value
// encodes again and decodes to the same value.
func FuzzDecode(f *testing.F) {
	fx := newFixture(f)
	ctx := context.Background()
	readers := []*codec.Schema{nil,
		fx.schema(f, progressSubject, 1), fx.schema(f, progressSubject, 3),
		fx.schema(f, "pyrite.workeffort.Completed", 1)}
	at := time.UnixMilli(1741064767890).UTC()
	for _, seed := range []struct {
		subject string
		version int
		v       any
	}{
		{progressSubject, 1, progressV1{10, 60}},
		{progressSubject, 2, map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1}},
		{progressSubject, 3, progressV3{10, 60, 50, "60%"}},
		{"pyrite.workeffort.Completed", 1, map[string]any{"title": "t", "completedAt": at, "duration": int64(9), "ticketCount": 1, "assigneeEmail": "a@b"}},
		{"pyrite.system.WebSocketConnected", 1, map[string]any{"clientId": "c", "metadata": map[string]any{"k": "v"}}},
		{"pyrite.workeffort.Created", 1, created{Title: "x", CreatedAt: at}},
	} {
		data, err := fx.codec.Encode(fx.schema(f, seed.subject, seed.version), seed.v)
		if err != nil {
			f.Fatal(err)
		}
		for r := range readers {
			f.Add(data, uint8(r))
		}
	}
	f.Add([]byte{0, 0, 0, 0}, uint8(0))
	f.Add([]byte{1, 0, 0, 0, 101, 2}, uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, r uint8) {
		reader := readers[int(r)%len(readers)]
		var got map[string]any
		w, err := fx.codec.Decode(ctx, data, reader, &got)
		if err != nil {
			for _, s := range []error{codec.ErrShortValue, codec.ErrBadMagic, codec.ErrUnknownSchemaID,
				codec.ErrInvalidData, codec.ErrIncompatible} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no expected sentinel: %v", err)
		}
		// Into a struct too, when the same fields are read (fields a reader skips are only
		// checked as far as hamba's skipping does).
		var st progressV3
		if w.Subject == progressSubject && (reader == nil || reader == readers[2]) {
			if _, err := fx.codec.Decode(ctx, data, fx.schema(t, progressSubject, 3), &st); err != nil {
				t.Fatalf("decoded into a map but not into a struct: %v", err)
			}
		}
		as := w
		if reader != nil {
			as = reader
		}
		again, err := fx.codec.Encode(as, got)
		if err != nil {
			t.Fatalf("decoded value %#v does not encode: %v", got, err)
		}
		var got2 map[string]any
		if _, err := fx.codec.Decode(ctx, again, nil, &got2); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !reflect.DeepEqual(got, got2) {
			t.Fatalf("round trip changed %#v to %#v", got, got2)
		}
		if _, err := codec.ToJSON(as, got); err != nil {
			t.Fatalf("ToJSON of a decoded value: %v", err)
		}
	})
}

// FuzzFromJSON: any input gives a value or a *FieldErrors; a value always encodes, and its
// JSON form reads back to the same value.
func FuzzFromJSON(f *testing.F) {
	fx := newFixture(f)
	outerID := fx.reg.register(f, "pyrite.system.Outer", outerSchema)
	outer, err := fx.codec.ByID(context.Background(), outerID)
	if err != nil {
		f.Fatal(err)
	}
	targets := []*codec.Schema{
		fx.schema(f, progressSubject, 3), fx.schema(f, "pyrite.workeffort.Completed", 1),
		fx.schema(f, "pyrite.system.WebSocketConnected", 1), outer,
	}
	for _, seed := range []string{
		`{"oldProgress":1,"newProgress":2}`,
		`{"title":"t","completedAt":"2025-03-04T05:06:07.89Z","duration":5,"ticketCount":2,"assigneeEmail":{"string":"x"}}`,
		`{"clientId":"c","metadata":{"a":"b"}}`,
		`{"inner":{"n":1,"tags":["a"]},"maybe":{"n":2},"choice":"s","color":"GREEN","raw":"AQI=","when":0}`,
		`{"inner":{"n":1},"choice":{"int":3},"maybe":{"pyrite.system.Inner":{"n":1}}}`,
		`{"a":1,"a":2}`, `[`, `{"oldProgress":1e400}`,
	} {
		for i := range targets {
			f.Add([]byte(seed), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		s := targets[int(which)%len(targets)]
		v, err := codec.FromJSON(s, data)
		if err != nil {
			var fes *codec.FieldErrors
			if !errors.As(err, &fes) || len(*fes) == 0 || !errors.Is(err, codec.ErrInvalidData) {
				t.Fatalf("error is not a non-empty *FieldErrors: %v", err)
			}
			return
		}
		enc, err := fx.codec.Encode(s, v)
		if err != nil {
			t.Fatalf("FromJSON result %#v does not encode: %v", v, err)
		}
		var dec map[string]any
		if _, err := fx.codec.Decode(context.Background(), enc, nil, &dec); err != nil {
			t.Fatalf("decode: %v", err)
		}
		js, err := codec.ToJSON(s, dec)
		if err != nil {
			t.Fatalf("ToJSON: %v", err)
		}
		v2, err := codec.FromJSON(s, js)
		if err != nil {
			t.Fatalf("ToJSON output %s does not read back: %v", js, err)
		}
		enc2, err := fx.codec.Encode(s, v2)
		if err != nil {
			t.Fatal(err)
		}
		var dec2 map[string]any
		if _, err := fx.codec.Decode(context.Background(), enc2, nil, &dec2); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dec, dec2) {
			t.Fatalf("JSON round trip changed %#v to %#v", dec, dec2)
		}
	})
}
