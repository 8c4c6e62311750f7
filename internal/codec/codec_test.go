package codec_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

func TestLookups(t *testing.T) {
	fx := newFixture(t)
	ctx := t.Context()
	id2 := fx.ids[progressSubject+".v2"]

	byID, err := fx.codec.ByID(ctx, id2)
	if err != nil {
		t.Fatal(err)
	}
	if byID.ID != id2 || byID.Subject != progressSubject || byID.Version != 2 {
		t.Errorf("ByID = {ID %d, Subject %q, Version %d}, want {%d, %q, 2}", byID.ID, byID.Subject, byID.Version, id2, progressSubject)
	}
	if n := len(byID.Avro.(*avro.RecordSchema).Fields()); n != 3 {
		t.Errorf("v2 has %d fields, want 3", n)
	}
	byVersion, err := fx.codec.Version(ctx, progressSubject, 2)
	if err != nil {
		t.Fatal(err)
	}
	if byVersion != byID {
		t.Error("Version(subject, 2) and ByID(id of v2) returned different *Schema values for one ID")
	}
	latest, err := fx.codec.Latest(ctx, progressSubject)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != 3 || latest.ID != fx.ids[progressSubject+".v3"] {
		t.Errorf("Latest = version %d id %d, want version 3 id %d", latest.Version, latest.ID, fx.ids[progressSubject+".v3"])
	}
	again, err := fx.codec.Version(ctx, progressSubject, 3)
	if err != nil {
		t.Fatal(err)
	}
	if again != latest {
		t.Error("Version(subject, 3) after Latest did not reuse the cached schema")
	}
	if got := fx.reg.verCalls.Load(); got != 1 {
		t.Errorf("GetSchemaByVersion calls = %d, want 1 (version 3 was known from Latest)", got)
	}
}

func TestLookupErrors(t *testing.T) {
	type call func(c *codec.Codec, fx *fixture) error
	byID := func(id int) call {
		return func(c *codec.Codec, _ *fixture) error { _, err := c.ByID(context.Background(), id); return err }
	}
	version := func(subject string, v int) call {
		return func(c *codec.Codec, _ *fixture) error {
			_, err := c.Version(context.Background(), subject, v)
			return err
		}
	}
	latest := func(subject string) call {
		return func(c *codec.Codec, _ *fixture) error { _, err := c.Latest(context.Background(), subject); return err }
	}
	tests := []struct {
		name      string
		regErr    error // every registry call fails with this
		call      call
		want      error // nil: no sentinel must match
		wantCalls int64
	}{
		{name: "unknown id", call: byID(99999), want: codec.ErrUnknownSchemaID, wantCalls: 1},
		{name: "negative id", call: byID(-1), want: codec.ErrUnknownSchemaID, wantCalls: 0},
		{name: "unknown subject", call: version("pyrite.workeffort.Nope", 1), want: codec.ErrUnknownSubject, wantCalls: 1},
		{name: "unknown version", call: version(progressSubject, 9), want: codec.ErrUnknownSubject, wantCalls: 1},
		{name: "version zero", call: version(progressSubject, 0), want: codec.ErrUnknownSubject, wantCalls: 0},
		{name: "latest of unknown subject", call: latest("pyrite.workeffort.Nope"), want: codec.ErrUnknownSubject, wantCalls: 1},
		{name: "plain 404 by id", regErr: errors.New("404 Not Found"), call: byID(1), want: codec.ErrUnknownSchemaID, wantCalls: 1},
		{name: "plain 404 by version", regErr: errors.New("404 Not Found"), call: version(progressSubject, 1), want: codec.ErrUnknownSubject, wantCalls: 1},
		{name: "confluent 50001", regErr: srclient.Error{Code: 50001, Message: "store error"}, call: byID(1), want: codec.ErrRegistryUnavailable, wantCalls: 1},
		{name: "http 500 code", regErr: srclient.Error{Code: 500, Message: "boom"}, call: latest(progressSubject), want: codec.ErrRegistryUnavailable, wantCalls: 1},
		{name: "503 status line", regErr: errors.New("503 Service Unavailable"), call: version(progressSubject, 1), want: codec.ErrRegistryUnavailable, wantCalls: 1},
		{name: "429 status line", regErr: errors.New("429 Too Many Requests"), call: byID(1), want: codec.ErrRegistryUnavailable, wantCalls: 1},
		{name: "connection refused", regErr: &url.Error{Op: "Get", URL: "http://127.0.0.1:1/schemas/ids/1", Err: errors.New("connect: connection refused")}, call: byID(1), want: codec.ErrRegistryUnavailable, wantCalls: 1},
		{name: "timeout", regErr: context.DeadlineExceeded, call: byID(1), want: codec.ErrRegistryUnavailable, wantCalls: 1},
		{name: "401 is not transient", regErr: errors.New("401 Unauthorized"), call: byID(1), want: nil, wantCalls: 1},
		{name: "40301 is not transient", regErr: srclient.Error{Code: 40301, Message: "forbidden"}, call: version(progressSubject, 1), want: nil, wantCalls: 1},
	}
	sentinels := []error{codec.ErrUnknownSchemaID, codec.ErrUnknownSubject, codec.ErrRegistryUnavailable,
		codec.ErrInvalidData, codec.ErrBadMagic, codec.ErrShortValue, codec.ErrIncompatible, codec.ErrUnsupportedSchema}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.reg.failWith(tt.regErr)
			err := tt.call(fx.codec, fx)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), s == tt.want; got != want {
					t.Errorf("errors.Is(%q, %v) = %v, want %v", err, s, got, want)
				}
			}
			if got := fx.reg.calls.Load(); got != tt.wantCalls {
				t.Errorf("registry calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestUnsupportedSchemas(t *testing.T) {
	proto, _ := srclient.NewSchema(7, `syntax = "proto3"; message M {}`, srclient.Protobuf, 1, nil, nil, nil)
	withRefs, _ := srclient.NewSchema(8, `{"type":"record","name":"A","fields":[{"name":"b","type":"B"}]}`, srclient.Avro, 1,
		[]srclient.Reference{{Name: "B", Subject: "B", Version: 1}}, nil, nil)
	broken, _ := srclient.NewSchema(9, `{"type":"record","name":"A","fields":[{"name":"b","type":"nope"}]}`, srclient.Avro, 1, nil, nil, nil)
	for _, tt := range []struct {
		name string
		s    *srclient.Schema
	}{{"protobuf", proto}, {"references", withRefs}, {"unparseable", broken}} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry()
			reg.put(tt.s.ID(), tt.s)
			_, err := codec.New(reg).ByID(t.Context(), tt.s.ID())
			if !errors.Is(err, codec.ErrUnsupportedSchema) {
				t.Fatalf("err = %v, want ErrUnsupportedSchema", err)
			}
		})
	}
}

func TestConcurrentLookupsShareOneCall(t *testing.T) {
	fx := newFixture(t)
	gate := make(chan struct{})
	fx.reg.gate.Store(&gate)
	id := fx.ids[progressSubject+".v1"]

	const n = 32
	var wg sync.WaitGroup
	got := make([]*codec.Schema, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = fx.codec.ByID(context.Background(), id) })
	}
	waitFor(t, func() bool { return fx.reg.idCalls.Load() >= 1 })
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i] != got[0] {
			t.Fatal("goroutines got different *Schema values for one ID")
		}
	}
	if c := fx.reg.idCalls.Load(); c != 1 {
		t.Errorf("GetSchema calls = %d, want 1", c)
	}
}

func TestContextEndsWhileRegistryIsSlow(t *testing.T) {
	fx := newFixture(t)
	gate := make(chan struct{})
	fx.reg.gate.Store(&gate)
	id := fx.ids[progressSubject+".v1"]

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := fx.codec.ByID(ctx, id); done <- err }()
	waitFor(t, func() bool { return fx.reg.idCalls.Load() >= 1 })
	cancel()
	err := <-done
	if !errors.Is(err, codec.ErrRegistryUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrRegistryUnavailable wrapping context.Canceled", err)
	}
	close(gate)
	// The call that was under way completes and fills the cache.
	waitFor(t, func() bool {
		s, err := fx.codec.ByID(context.Background(), id)
		return err == nil && s.ID == id
	})
	if c := fx.reg.idCalls.Load(); c != 1 {
		t.Errorf("GetSchema calls = %d, want 1", c)
	}
}

func TestUnknownIDIsRemembered(t *testing.T) {
	tests := []struct {
		name      string
		opts      []codec.Option
		wait      time.Duration
		wantCalls int64
	}{
		{name: "default ttl", wantCalls: 1},
		{name: "after ttl", opts: []codec.Option{codec.WithNegativeTTL(time.Second)}, wait: 2 * time.Second, wantCalls: 2},
		{name: "disabled", opts: []codec.Option{codec.WithNegativeTTL(0)}, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newFixture(t, tt.opts...)
				for range 2 {
					if _, err := fx.codec.ByID(t.Context(), 4242); !errors.Is(err, codec.ErrUnknownSchemaID) {
						t.Fatalf("err = %v, want ErrUnknownSchemaID", err)
					}
					time.Sleep(tt.wait)
				}
				if got := fx.reg.idCalls.Load(); got != tt.wantCalls {
					t.Errorf("GetSchema calls = %d, want %d", got, tt.wantCalls)
				}
			})
		})
	}
}

func TestLatestIsRefreshedAfterTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, codec.WithLatestTTL(time.Minute))
		ctx := t.Context()
		s, err := fx.codec.Latest(ctx, progressSubject)
		if err != nil || s.Version != 3 {
			t.Fatalf("Latest = %v, %v; want version 3", s, err)
		}
		fx.reg.register(t, progressSubject, strings.Replace(s.Text, "Version 3 adds formatted.", "Version 4 edits a doc.", 1))

		time.Sleep(59 * time.Second)
		for range 100 {
			if s, _ = fx.codec.Latest(ctx, progressSubject); s.Version != 3 {
				t.Fatalf("within the TTL Latest = version %d, want 3", s.Version)
			}
		}
		if got := fx.reg.latestCalls.Load(); got != 1 {
			t.Fatalf("GetLatestSchema calls within the TTL = %d, want 1", got)
		}
		time.Sleep(2 * time.Second)
		if s, err = fx.codec.Latest(ctx, progressSubject); err != nil || s.Version != 4 {
			t.Fatalf("after the TTL Latest = %v, %v; want version 4", s, err)
		}
		if got := fx.reg.latestCalls.Load(); got != 2 {
			t.Errorf("GetLatestSchema calls = %d, want 2", got)
		}
	})
}

func TestLatestServesCachedVersionWhileRegistryIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, codec.WithLatestTTL(time.Minute))
		ctx := t.Context()
		first, err := fx.codec.Latest(ctx, progressSubject)
		if err != nil {
			t.Fatal(err)
		}
		fx.reg.failWith(errors.New("503 Service Unavailable"))
		time.Sleep(61 * time.Second)
		for range 3 {
			s, err := fx.codec.Latest(ctx, progressSubject)
			if err != nil || s != first {
				t.Fatalf("Latest while down = %v, %v; want the cached schema", s, err)
			}
		}
		if got := fx.reg.latestCalls.Load(); got != 2 {
			t.Fatalf("GetLatestSchema calls = %d, want 2 (one retry, then back off)", got)
		}
		time.Sleep(6 * time.Second)
		if _, err := fx.codec.Latest(ctx, progressSubject); err != nil {
			t.Fatal(err)
		}
		if got := fx.reg.latestCalls.Load(); got != 3 {
			t.Errorf("GetLatestSchema calls after the back-off = %d, want 3", got)
		}
		// With nothing cached, the error surfaces.
		if _, err := fx.codec.Latest(ctx, "pyrite.system.FileChanged"); !errors.Is(err, codec.ErrRegistryUnavailable) {
			t.Errorf("uncached Latest while down: err = %v, want ErrRegistryUnavailable", err)
		}
	})
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
