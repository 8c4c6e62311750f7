package codec_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

type progressV1 struct {
	OldProgress int `avro:"oldProgress"`
	NewProgress int `avro:"newProgress"`
}

type progressV3 struct {
	OldProgress int    `avro:"oldProgress"`
	NewProgress int    `avro:"newProgress"`
	Delta       int    `avro:"delta"`
	Formatted   string `avro:"formatted"`
}

type created struct {
	Title       string    `avro:"title"`
	Description *string   `avro:"description"`
	CreatedAt   time.Time `avro:"createdAt"`
	Assignee    *string   `avro:"assignee"`
}

func (fx *fixture) schema(t testing.TB, subject string, version int) *codec.Schema {
	t.Helper()
	s, err := fx.codec.Version(context.Background(), subject, version)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	fx := newFixture(t)
	desc := "write the codec"
	at := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	tests := []struct {
		name    string
		subject string
		in      any
		out     any // pointer to a zero value of the decoded type
		want    any // what out points to afterwards
	}{
		{
			name: "struct", subject: progressSubject,
			in:   progressV3{OldProgress: 10, NewProgress: 60, Delta: 50, Formatted: "60%"},
			out:  &progressV3{},
			want: progressV3{OldProgress: 10, NewProgress: 60, Delta: 50, Formatted: "60%"},
		},
		{
			name: "pointer to struct with optional fields", subject: "pyrite.workeffort.Created",
			in:   &created{Title: "codec", Description: &desc, CreatedAt: at},
			out:  &created{},
			want: created{Title: "codec", Description: &desc, CreatedAt: at},
		},
		{
			name: "map with timestamp and null union", subject: "pyrite.workeffort.Completed",
			in: map[string]any{"title": "t", "completedAt": at, "duration": int64(1234), "ticketCount": 3,
				"assigneeEmail": nil},
			out: &map[string]any{},
			want: map[string]any{"title": "t", "completedAt": at, "duration": int64(1234), "ticketCount": 3,
				"assigneeEmail": nil},
		},
		{
			name: "map with string in union", subject: "pyrite.workeffort.Completed",
			in: map[string]any{"title": "t", "completedAt": at, "duration": int64(1), "ticketCount": 0,
				"assigneeEmail": "a@example.com"},
			out: &map[string]any{},
			want: map[string]any{"title": "t", "completedAt": at, "duration": int64(1), "ticketCount": 0,
				"assigneeEmail": "a@example.com"},
		},
		{
			name: "avro map", subject: "pyrite.system.WebSocketConnected",
			in:   map[string]any{"clientId": "c1", "metadata": map[string]any{"agent": "curl", "ip": "::1"}},
			out:  &map[string]any{},
			want: map[string]any{"clientId": "c1", "metadata": map[string]any{"agent": "curl", "ip": "::1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := fx.codec.Latest(t.Context(), tt.subject)
			if err != nil {
				t.Fatal(err)
			}
			data, err := fx.codec.Encode(s, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if id, _, err := codec.SplitFrame(data); err != nil || id != s.ID {
				t.Fatalf("frame id = %d, %v; want %d", id, err, s.ID)
			}
			w, err := fx.codec.Decode(t.Context(), data, nil, tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if w != s {
				t.Errorf("writer schema = %v, want the encoding schema", w)
			}
			if got := reflect.ValueOf(tt.out).Elem().Interface(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestSchemaResolution(t *testing.T) {
	fx := newFixture(t)
	v1, v2, v3 := fx.schema(t, progressSubject, 1), fx.schema(t, progressSubject, 2), fx.schema(t, progressSubject, 3)
	tests := []struct {
		name   string
		writer *codec.Schema
		in     any
		reader *codec.Schema
		out    any
		want   any
	}{
		{
			name: "v1 read as v3 takes defaults", writer: v1, in: progressV1{10, 60}, reader: v3,
			out: &progressV3{Delta: 99, Formatted: "x"}, want: progressV3{OldProgress: 10, NewProgress: 60, Delta: 0, Formatted: ""},
		},
		{
			name: "v1 read as v3 into a map", writer: v1, in: progressV1{10, 60}, reader: v3,
			out: &map[string]any{}, want: map[string]any{"oldProgress": 10, "newProgress": 60, "delta": 0, "formatted": ""},
		},
		{
			name: "v2 read as v3", writer: v2, in: map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1}, reader: v3,
			out: &progressV3{}, want: progressV3{OldProgress: 1, NewProgress: 2, Delta: 1},
		},
		{
			name: "v3 read as v1 skips new fields", writer: v3, in: progressV3{5, 7, 2, "7%"}, reader: v1,
			out: &progressV1{}, want: progressV1{5, 7},
		},
		{
			name: "same id needs no resolution", writer: v3, in: progressV3{5, 7, 2, "7%"}, reader: v3,
			out: &progressV3{}, want: progressV3{5, 7, 2, "7%"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := fx.codec.Encode(tt.writer, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			w, err := fx.codec.Decode(t.Context(), data, tt.reader, tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if w.ID != tt.writer.ID {
				t.Errorf("writer id = %d, want %d", w.ID, tt.writer.ID)
			}
			if got := reflect.ValueOf(tt.out).Elem().Interface(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	fx := newFixture(t)
	v1, v3 := fx.schema(t, progressSubject, 1), fx.schema(t, progressSubject, 3)
	started := fx.schema(t, "pyrite.workeffort.Started", 1)
	good, err := fx.codec.Encode(v3, progressV3{1, 2, 1, "2%"})
	if err != nil {
		t.Fatal(err)
	}
	// An ID the fake registry does not know.
	unknown := append(codec.AppendHeader(nil, 77777), good[codec.HeaderSize:]...)
	unknown2 := append(codec.AppendHeader(nil, 77778), good[codec.HeaderSize:]...)
	tests := []struct {
		name   string
		data   []byte
		reader *codec.Schema
		down   bool
		want   error
	}{
		{name: "empty", data: nil, want: codec.ErrShortValue},
		{name: "header only partly", data: good[:4], want: codec.ErrShortValue},
		{name: "bad magic", data: append([]byte{1}, good[1:]...), want: codec.ErrBadMagic},
		{name: "unknown id", data: unknown, want: codec.ErrUnknownSchemaID},
		{name: "registry down", data: unknown2, down: true, want: codec.ErrRegistryUnavailable},
		{name: "truncated body", data: good[:len(good)-1], want: codec.ErrInvalidData},
		{name: "body cut inside a varint", data: append(codec.AppendHeader(nil, v1.ID), 0x80), want: codec.ErrInvalidData},
		{name: "empty body", data: codec.AppendHeader(nil, v3.ID), want: codec.ErrInvalidData},
		{name: "trailing bytes", data: append(append([]byte{}, good...), 0), want: codec.ErrInvalidData},
		{name: "negative string length", data: append(codec.AppendHeader(nil, v3.ID), 2, 4, 2, 1), want: codec.ErrInvalidData},
		{name: "other record as reader", data: good, reader: started, want: codec.ErrIncompatible},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.down {
				fx.reg.failWith(errors.New("502 Bad Gateway"))
				defer fx.reg.failWith(nil)
			}
			var out map[string]any
			_, err := fx.codec.Decode(t.Context(), tt.data, tt.reader, &out)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	fx := newFixture(t)
	v3 := fx.schema(t, progressSubject, 3)
	completed := fx.schema(t, "pyrite.workeffort.Completed", 1)
	tests := []struct {
		name       string
		schema     *codec.Schema
		in         any
		wantFields []codec.FieldError // nil: not a *FieldErrors
	}{
		{name: "nil schema", schema: nil, in: progressV3{}},
		{name: "struct lacking a required field", schema: v3, in: struct {
			OldProgress int `avro:"oldProgress"`
		}{1}},
		{name: "map with every problem listed", schema: completed, in: map[string]any{
			"title": 5, "completedAt": "yesterday", "ticketCount": int64(3), "assigneeEmail": 7,
		}, wantFields: []codec.FieldError{
			{Field: "title", Message: "must be a string, got int"},
			{Field: "completedAt", Message: "must be a time.Time or an integer, got string"},
			{Field: "duration", Message: "required field is missing"},
			{Field: "ticketCount", Message: "must be an int or int32 for Avro int, got int64"},
			{Field: "assigneeEmail", Message: "int fits none of string"},
		}},
		{name: "int out of range", schema: v3, in: map[string]any{"oldProgress": 1 << 40, "newProgress": 1},
			wantFields: []codec.FieldError{{Field: "oldProgress", Message: "out of range for int"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := fx.codec.Encode(tt.schema, tt.in)
			if err == nil {
				t.Fatalf("no error; encoded %x", out)
			}
			if tt.schema != nil && !errors.Is(err, codec.ErrInvalidData) {
				t.Errorf("err = %v, want ErrInvalidData", err)
			}
			var fe *codec.FieldErrors
			if errors.As(err, &fe) != (tt.wantFields != nil) {
				t.Fatalf("errors.As(*FieldErrors) = %v for %v", !(tt.wantFields != nil), err)
			}
			if tt.wantFields != nil && !reflect.DeepEqual([]codec.FieldError(*fe), tt.wantFields) {
				t.Errorf("fields = %q\nwant     %q", *fe, tt.wantFields)
			}
			dst := []byte("keep")
			if got, err := fx.codec.AppendEncode(dst, tt.schema, tt.in); err == nil || string(got) != "keep" {
				t.Errorf("AppendEncode on error = %q, %v; want dst unchanged and an error", got, err)
			}
		})
	}
}

// Two versions whose texts differ only in a default have the same Parsing Canonical Form;
// each must still encode and resolve with its own default.
func TestSchemasDifferingOnlyInDefaults(t *testing.T) {
	reg := newFakeRegistry()
	const tmpl = `{"type":"record","name":"D","namespace":"pyrite.system","fields":[
		{"name":"a","type":"int"},{"name":"b","type":"int","default":%s}]}`
	idA := reg.register(t, "pyrite.system.D", sprintf(tmpl, "1"))
	idB := reg.register(t, "pyrite.system.D", sprintf(tmpl, "2"))
	idOld := reg.register(t, "pyrite.system.Old", `{"type":"record","name":"D","namespace":"pyrite.system","fields":[{"name":"a","type":"int"}]}`)
	c := codec.New(reg)
	ctx := t.Context()
	get := func(id int) *codec.Schema {
		s, err := c.ByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, old := get(idA), get(idB), get(idOld)
	type rec struct {
		A int `avro:"a"`
		B int `avro:"b"`
	}
	for _, tt := range []struct {
		name   string
		schema *codec.Schema
		wantB  int
	}{{"first", a, 1}, {"second", b, 2}, {"first again", a, 1}} {
		t.Run("encode default "+tt.name, func(t *testing.T) {
			data, err := c.Encode(tt.schema, map[string]any{"a": 7})
			if err != nil {
				t.Fatal(err)
			}
			var got rec
			if _, err := c.Decode(ctx, data, nil, &got); err != nil {
				t.Fatal(err)
			}
			if got.B != tt.wantB {
				t.Errorf("b = %d, want the schema's default %d", got.B, tt.wantB)
			}
		})
		t.Run("resolve default "+tt.name, func(t *testing.T) {
			data, err := c.Encode(old, map[string]any{"a": 7})
			if err != nil {
				t.Fatal(err)
			}
			var got rec
			if _, err := c.Decode(ctx, data, tt.schema, &got); err != nil {
				t.Fatal(err)
			}
			if got.B != tt.wantB {
				t.Errorf("b = %d, want the reader's default %d", got.B, tt.wantB)
			}
		})
	}
}

func TestAppendEncodeDoesNotAllocate(t *testing.T) {
	fx := newFixture(t)
	s := fx.schema(t, progressSubject, 3)
	v := &progressV3{OldProgress: 10, NewProgress: 60, Delta: 50, Formatted: "60%"}
	buf := make([]byte, 0, 64)
	if _, err := fx.codec.AppendEncode(buf, s, v); err != nil { // warm hamba's encoder cache
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		var err error
		if _, err = fx.codec.AppendEncode(buf[:0], s, v); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendEncode allocated %.1f times per call, want 0", allocs)
	}
	got, _ := fx.codec.AppendEncode(buf[:0], s, v)
	want, _ := fx.codec.Encode(s, v)
	if !bytes.Equal(got, want) {
		t.Errorf("AppendEncode = %x, Encode = %x", got, want)
	}
}

func TestDecodedStringsDoNotAliasInput(t *testing.T) {
	fx := newFixture(t)
	s := fx.schema(t, progressSubject, 3)
	data, err := fx.codec.Encode(s, progressV3{Formatted: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	var got progressV3
	if _, err := fx.codec.Decode(t.Context(), data, nil, &got); err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'z'
	}
	if got.Formatted != "abc" {
		t.Errorf("decoded string changed to %q when the input was overwritten", got.Formatted)
	}
}

func TestNoRegistryCallsAfterWarmUp(t *testing.T) {
	fx := newFixture(t)
	ctx := t.Context()
	v3, err := fx.codec.Latest(ctx, progressSubject)
	if err != nil {
		t.Fatal(err)
	}
	var records [][]byte
	for v := 1; v <= 3; v++ {
		data, err := fx.codec.Encode(fx.schema(t, progressSubject, v), map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1, "formatted": "2%"})
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, data)
	}
	// Warm-up: one decode of each writer version.
	for _, data := range records {
		if _, err := fx.codec.Decode(ctx, data, v3, &progressV3{}); err != nil {
			t.Fatal(err)
		}
	}
	warm := fx.reg.calls.Load()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 500 {
				s, err := fx.codec.Latest(ctx, progressSubject)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := fx.codec.Encode(s, progressV3{NewProgress: i}); err != nil {
					t.Error(err)
					return
				}
				if _, err := fx.codec.Decode(ctx, records[i%len(records)], v3, &progressV3{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := fx.reg.calls.Load(); got != warm {
		t.Errorf("registry calls after warm-up = %d, want 0", got-warm)
	}
}

func TestDecodeTargetMustBeAPointer(t *testing.T) {
	fx := newFixture(t)
	s := fx.schema(t, progressSubject, 3)
	data, err := fx.codec.Encode(s, progressV3{})
	if err != nil {
		t.Fatal(err)
	}
	var nilPtr *progressV3
	for _, tt := range []struct {
		name string
		v    any
	}{{"nil", nil}, {"struct value", progressV3{}}, {"nil pointer", nilPtr}} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fx.codec.Decode(t.Context(), data, nil, tt.v)
			if err == nil || errors.Is(err, codec.ErrInvalidData) {
				t.Errorf("err = %v, want a non-sentinel error", err)
			}
		})
	}
}
