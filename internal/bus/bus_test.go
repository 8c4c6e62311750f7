package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

func on(t *testing.T, b *bus.Bus, pattern string, h bus.Handler, opts bus.Options) func() {
	t.Helper()
	off, err := b.On(pattern, h, opts)
	if err != nil {
		t.Fatalf("On(%q): %v", pattern, err)
	}
	return off
}

func publish(t *testing.T, b *bus.Bus, ev *bus.Event) []bus.Result {
	t.Helper()
	res, err := b.Publish(t.Context(), ev)
	if err != nil {
		t.Fatalf("Publish(%s): %v", ev.Type, err)
	}
	return res
}

func names(res []bus.Result) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Name)
	}
	return out
}

// The seed's "Testing Events" section, in Go.
func TestSeed(t *testing.T) {
	t.Run("captures all events", func(t *testing.T) {
		b := bus.New()
		var events []*bus.Event
		on(t, b, "*", func(_ context.Context, ev *bus.Event) error { events = append(events, ev); return nil }, bus.Options{})
		publish(t, b, &bus.Event{Type: "WorkEffort:ProgressUpdated", Data: map[string]any{"newProgress": 50}})
		if len(events) != 1 || events[0].Type != "WorkEffort:ProgressUpdated" || events[0].Data["newProgress"] != 50 {
			t.Fatalf("captured %+v", events)
		}
	})
	t.Run("executes handlers in priority order", func(t *testing.T) {
		b := bus.New()
		var order []string
		add := func(name string, prio int) {
			on(t, b, "Test", func(context.Context, *bus.Event) error { order = append(order, name); return nil },
				bus.Options{Name: name, Priority: prio})
		}
		add("low", 1)
		add("high", 10)
		add("medium", 5)
		add("medium-2", 5) // same priority: subscription order
		add("negative", -3)
		res := publish(t, b, &bus.Event{Type: "Test"})
		want := []string{"high", "medium", "medium-2", "low", "negative"}
		if !slices.Equal(order, want) || !slices.Equal(names(res), want) {
			t.Fatalf("order %v, results %v, want %v", order, names(res), want)
		}
	})
	t.Run("isolates errors in handlers", func(t *testing.T) {
		b := bus.New()
		called := false
		failure := errors.New("handler failed")
		on(t, b, "Test", func(context.Context, *bus.Event) error { return failure }, bus.Options{Name: "fails", Priority: 1})
		on(t, b, "Test", func(context.Context, *bus.Event) error { called = true; return nil }, bus.Options{Name: "works"})
		res := publish(t, b, &bus.Event{Type: "Test"})
		if !called {
			t.Fatal("second handler not called after the first failed")
		}
		if len(res) != 2 || !errors.Is(res[0].Err, failure) || res[1].Err != nil {
			t.Fatalf("results %+v", res)
		}
		if s := b.Stats(); s.Published != 1 || s.Delivered != 1 || s.Errors != 1 || s.ErrorRate != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		name, pattern, typ string
		want               bool
	}{
		{"star matches anything", "*", "WorkEffort:Started", true},
		{"star matches single segment", "*", "work-effort.completed.v1", true},
		{"exact", "WorkEffort:Started", "WorkEffort:Started", true},
		{"exact other", "WorkEffort:Started", "WorkEffort:Completed", false},
		{"aggregate wildcard", "WorkEffort:*", "WorkEffort:ProgressUpdated", true},
		{"aggregate wildcard other aggregate", "WorkEffort:*", "Deployment:RunTests", false},
		{"name wildcard", "*:Updated", "Cache:Updated", true},
		{"name wildcard other name", "*:Updated", "WorkEffort:ProgressUpdated", false},
		{"segment counts differ", "WorkEffort:*", "WorkEffort", false},
		{"segment counts differ 2", "*:*", "a:b:c", false},
		{"two wildcards", "*:*", "WorkEffort:Started", true},
		{"partial star is literal", "Work*:Started", "WorkEffort:Started", false},
		{"partial star literal match", "Work*:Started", "Work*:Started", true},
		{"empty type", "WorkEffort:*", "", false},
		{"invalid pattern matches nothing", "WorkEffort:", "WorkEffort:", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bus.Match(tc.pattern, tc.typ); got != tc.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tc.pattern, tc.typ, got, tc.want)
			}
		})
	}
}

func TestOnRejects(t *testing.T) {
	noop := func(context.Context, *bus.Event) error { return nil }
	tests := []struct {
		name, pattern string
		h             bus.Handler
		opts          bus.Options
		want          error
	}{
		{"empty pattern", "", noop, bus.Options{}, bus.ErrInvalidPattern},
		{"empty segment", "WorkEffort::Started", noop, bus.Options{}, bus.ErrInvalidPattern},
		{"trailing colon", "WorkEffort:", noop, bus.Options{}, bus.ErrInvalidPattern},
		{"comma in name", "*", noop, bus.Options{Name: "a,b"}, bus.ErrInvalidName},
		{"control char in name", "*", noop, bus.Options{Name: "a\nb"}, bus.ErrInvalidName},
		{"long name", "*", noop, bus.Options{Name: strings.Repeat("x", 201)}, bus.ErrInvalidName},
		{"duplicate name", "*", noop, bus.Options{Name: "taken"}, bus.ErrDuplicateName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bus.New()
			on(t, b, "Other", noop, bus.Options{Name: "taken"})
			if _, err := b.On(tc.pattern, tc.h, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("On: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("nil handler", func(t *testing.T) {
		if _, err := bus.New().On("*", nil, bus.Options{}); err == nil {
			t.Fatal("On accepted a nil handler")
		}
	})
}

func TestUnsubscribe(t *testing.T) {
	b := bus.New()
	var got []string
	rec := func(name string) bus.Handler {
		return func(context.Context, *bus.Event) error { got = append(got, name); return nil }
	}
	offA := on(t, b, "T", rec("a"), bus.Options{})
	on(t, b, "T", rec("b"), bus.Options{})
	on(t, b, "T", rec("c"), bus.Options{Name: "c"})

	res := publish(t, b, &bus.Event{Type: "T"})
	if want := []string{"T#1", "T#2", "c"}; !slices.Equal(names(res), want) {
		t.Fatalf("default names %v, want %v", names(res), want)
	}
	offA()
	offA() // idempotent
	if !b.Off("c") || b.Off("c") {
		t.Fatal("Off(c) should report true once, then false")
	}
	got = nil
	res = publish(t, b, &bus.Event{Type: "T"})
	if !slices.Equal(got, []string{"b"}) || !slices.Equal(names(res), []string{"T#2"}) {
		t.Fatalf("after unsubscribing: ran %v, results %v", got, names(res))
	}
	// A name that was freed can be taken again; default names are not reused.
	on(t, b, "T", rec("c2"), bus.Options{Name: "c"})
	on(t, b, "T", rec("d"), bus.Options{})
	if res := publish(t, b, &bus.Event{Type: "T"}); !slices.Equal(names(res), []string{"T#2", "c", "T#3"}) {
		t.Fatalf("results %v", names(res))
	}
}

func TestMiddleware(t *testing.T) {
	t.Run("filter cancels", func(t *testing.T) {
		b := bus.New()
		b.Use(bus.Filter(func(ev *bus.Event) bool { return ev.AggregateID != "skip" }))
		var n int
		on(t, b, "*", func(context.Context, *bus.Event) error { n++; return nil }, bus.Options{})
		if _, err := b.Publish(t.Context(), &bus.Event{Type: "T", AggregateID: "skip"}); !errors.Is(err, bus.ErrDropped) {
			t.Fatalf("Publish: %v, want ErrDropped", err)
		}
		publish(t, b, &bus.Event{Type: "T", AggregateID: "keep"})
		if n != 1 {
			t.Fatalf("handler ran %d times, want 1", n)
		}
		if s := b.Stats(); s.Dropped != 1 || s.Published != 2 || s.Errors != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("validation rejects permanently", func(t *testing.T) {
		b := bus.New()
		b.Use(bus.Validation(bus.CheckEnvelope))
		ran := false
		on(t, b, "*", func(context.Context, *bus.Event) error { ran = true; return nil }, bus.Options{})
		_, err := b.Publish(t.Context(), &bus.Event{Type: "T"})
		if !errors.Is(err, bus.ErrInvalidEvent) || !bus.IsPermanent(err) || ran {
			t.Fatalf("Publish: %v (ran %v), want a permanent ErrInvalidEvent and no handler", err, ran)
		}
		for _, field := range []string{"id", "aggregateId", "time"} {
			if !strings.Contains(err.Error(), field) {
				t.Errorf("error %q does not name %s", err, field)
			}
		}
		ok := &bus.Event{ID: "1", Type: "T", AggregateID: "a", Time: time.Unix(1, 0)}
		publish(t, b, ok)
		if !ran {
			t.Fatal("valid event not delivered")
		}
	})
	t.Run("enrichment changes a copy", func(t *testing.T) {
		b := bus.New()
		b.Use(bus.Enrichment(map[string]string{"hostname": "h1", "processid": "42"}))
		var seen *bus.Event
		on(t, b, "*", func(_ context.Context, ev *bus.Event) error { seen = ev; return nil }, bus.Options{})
		in := &bus.Event{Type: "T", Extensions: map[string]string{"hostname": "old", "keep": "k"}}
		publish(t, b, in)
		want := map[string]string{"hostname": "h1", "processid": "42", "keep": "k"}
		if fmt.Sprint(seen.Extensions) != fmt.Sprint(want) {
			t.Fatalf("handler saw %v, want %v", seen.Extensions, want)
		}
		if in.Extensions["hostname"] != "old" || len(in.Extensions) != 2 {
			t.Fatalf("publisher's event changed: %v", in.Extensions)
		}
		if got := b.Log(1)[0].Event.Extensions["hostname"]; got != "old" {
			t.Fatalf("log holds the enriched event (%q), want the published one", got)
		}
	})
	t.Run("host extensions", func(t *testing.T) {
		ext := bus.HostExtensions()
		if ext["processid"] == "" || ext["processid"] == "0" {
			t.Fatalf("HostExtensions() = %v", ext)
		}
	})
	t.Run("in order and may change the type", func(t *testing.T) {
		b := bus.New()
		var trail []string
		b.Use(func(_ context.Context, ev *bus.Event) (*bus.Event, error) {
			trail = append(trail, "first")
			ev.Type = "Renamed:Event"
			return ev, nil
		})
		b.Use(func(_ context.Context, ev *bus.Event) (*bus.Event, error) {
			trail = append(trail, "second:"+ev.Type)
			return ev, nil
		})
		on(t, b, "Renamed:*", func(context.Context, *bus.Event) error { trail = append(trail, "handler"); return nil }, bus.Options{})
		publish(t, b, &bus.Event{Type: "Original:Event"})
		if want := []string{"first", "second:Renamed:Event", "handler"}; !slices.Equal(trail, want) {
			t.Fatalf("trail %v, want %v", trail, want)
		}
	})
	t.Run("error is returned and counted", func(t *testing.T) {
		b := bus.New()
		boom := errors.New("boom")
		b.Use(func(context.Context, *bus.Event) (*bus.Event, error) { return nil, boom })
		if _, err := b.Publish(t.Context(), &bus.Event{Type: "T"}); !errors.Is(err, boom) || bus.IsPermanent(err) {
			t.Fatalf("Publish: %v", err)
		}
		if s := b.Stats(); s.Errors != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestPublishRejectsInvalidEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   *bus.Event
	}{{"nil", nil}, {"no type", &bus.Event{ID: "x"}}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := bus.New().Publish(t.Context(), tc.ev); !errors.Is(err, bus.ErrInvalidEvent) {
				t.Fatalf("Publish: %v", err)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	transient := errors.New("transient")
	tests := []struct {
		name         string
		failures     int // calls that fail before one succeeds
		permanent    bool
		retries      int
		maxBackoff   time.Duration
		wantAttempts int
		wantErr      bool
		wantGaps     []time.Duration
	}{
		{"no retries, success", 0, false, 0, 0, 1, false, nil},
		{"no retries, failure", 1, false, 0, 0, 1, true, nil},
		{"succeeds on third call", 2, false, 3, 0, 3, false, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"retries exhausted", 10, false, 3, 0, 4, true,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}},
		{"backoff capped", 10, false, 4, 250 * time.Millisecond, 5, true,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}},
		{"permanent not retried", 10, true, 5, 0, 1, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := bus.New(bus.WithMaxBackoff(tc.maxBackoff))
				var calls []time.Time
				on(t, b, "T", func(context.Context, *bus.Event) error {
					calls = append(calls, time.Now())
					if len(calls) <= tc.failures {
						if tc.permanent {
							return bus.Permanent(transient)
						}
						return transient
					}
					return nil
				}, bus.Options{Retries: tc.retries})
				res := publish(t, b, &bus.Event{Type: "T"})
				if res[0].Attempts != tc.wantAttempts || (res[0].Err != nil) != tc.wantErr || len(calls) != tc.wantAttempts {
					t.Fatalf("attempts %d (calls %d), err %v; want %d attempts, error %v",
						res[0].Attempts, len(calls), res[0].Err, tc.wantAttempts, tc.wantErr)
				}
				var gaps []time.Duration
				for i := 1; i < len(calls); i++ {
					gaps = append(gaps, calls[i].Sub(calls[i-1]))
				}
				if !slices.Equal(gaps, tc.wantGaps) {
					t.Fatalf("gaps between calls %v, want %v", gaps, tc.wantGaps)
				}
			})
		})
	}
}

func TestRetriesStopWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New()
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		on(t, b, "T", func(context.Context, *bus.Event) error {
			calls++
			return errors.New("down")
		}, bus.Options{Retries: 100, Backoff: time.Hour})
		time.AfterFunc(time.Minute, cancel)
		start := time.Now()
		res, err := b.Publish(ctx, &bus.Event{Type: "T"})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != time.Minute {
			t.Fatalf("Publish took %v, want the minute until cancel", took)
		}
		if calls != 1 || res[0].Attempts != 1 || !errors.Is(res[0].Err, context.Canceled) {
			t.Fatalf("calls %d, result %+v", calls, res[0])
		}
	})
}

func TestPanicIsIsolated(t *testing.T) {
	b := bus.New()
	on(t, b, "T", func(context.Context, *bus.Event) error { panic("kaboom") }, bus.Options{Name: "p", Priority: 1, Retries: 3})
	ran := false
	on(t, b, "T", func(context.Context, *bus.Event) error { ran = true; return nil }, bus.Options{})
	res := publish(t, b, &bus.Event{Type: "T"})
	if !ran || !errors.Is(res[0].Err, bus.ErrHandlerPanic) || !bus.IsPermanent(res[0].Err) || res[0].Attempts != 1 {
		t.Fatalf("ran %v, result %+v", ran, res[0])
	}
}

func TestAsyncHandlers(t *testing.T) {
	b := bus.New()
	release := make(chan struct{})
	var done, failed atomic.Int32
	on(t, b, "T", func(context.Context, *bus.Event) error {
		<-release
		done.Add(1)
		return nil
	}, bus.Options{Name: "slow", Async: true})
	on(t, b, "T", func(context.Context, *bus.Event) error {
		failed.Add(1)
		return errors.New("async failure")
	}, bus.Options{Name: "failing", Async: true, Retries: 2, Backoff: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	res, err := b.Publish(ctx, &bus.Event{Type: "T"})
	cancel() // the async handlers do not depend on the publisher's context
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Deferred || !r.Async || r.Attempts != 0 || r.Err != nil {
			t.Fatalf("result %+v, want deferred", r)
		}
	}
	short, stop := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer stop()
	if err := b.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait returned %v while a handler was blocked", err)
	}
	close(release)
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if done.Load() != 1 || failed.Load() != 3 {
		t.Fatalf("slow ran %d, failing ran %d (want 1 and 3)", done.Load(), failed.Load())
	}
	if s := b.Stats(); s.Delivered != 1 || s.Errors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLogIsBounded(t *testing.T) {
	b := bus.New()
	for i := range 1005 {
		publish(t, b, &bus.Event{Type: "T", ID: fmt.Sprint(i)})
	}
	all := b.Log(0)
	if len(all) != bus.DefaultLogSize || all[0].Event.ID != "5" || all[len(all)-1].Event.ID != "1004" {
		t.Fatalf("log has %d entries from %s to %s", len(all), all[0].Event.ID, all[len(all)-1].Event.ID)
	}
	last := b.Log(3)
	if len(last) != 3 || last[0].Event.ID != "1002" || last[2].Event.ID != "1004" || last[2].Time.IsZero() {
		t.Fatalf("Log(3) = %v", last)
	}
	if got := bus.New(bus.WithLogSize(0)).Log(0); len(got) != 0 {
		t.Fatalf("log of size 0 holds %d", len(got))
	}
}

func TestConcurrentPublish(t *testing.T) {
	b := bus.New(bus.WithLogSize(50))
	var seen atomic.Int64
	on(t, b, "*", func(context.Context, *bus.Event) error { seen.Add(1); return nil }, bus.Options{Name: "all"})
	b.Use(bus.Enrichment(map[string]string{"k": "v"}))
	const publishers, each = 8, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // subscribe and unsubscribe while publishing
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			off, err := b.On("WorkEffort:*", func(context.Context, *bus.Event) error { return nil }, bus.Options{Priority: i % 3})
			if err != nil {
				t.Error(err)
				return
			}
			b.Log(10)
			b.Stats()
			off()
		}
	})
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for i := range each {
				if _, err := b.Publish(context.Background(), &bus.Event{Type: "WorkEffort:Started", ID: fmt.Sprint(p, "-", i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	pubs.Wait()
	close(stop)
	wg.Wait()
	if seen.Load() != publishers*each || b.Stats().Published != publishers*each {
		t.Fatalf("handler saw %d, published %d, want %d", seen.Load(), b.Stats().Published, publishers*each)
	}
}

func TestPrometheusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewMetrics(reg); err == nil {
		t.Fatal("registering twice on one registry succeeded")
	}
	b := bus.New(bus.WithMetrics(m), bus.WithName("test"))
	b.Use(bus.Filter(func(ev *bus.Event) bool { return ev.ID != "drop" }))
	on(t, b, "T", func(context.Context, *bus.Event) error { return nil }, bus.Options{Name: "ok"})
	on(t, b, "T", func(context.Context, *bus.Event) error { return bus.Permanent(errors.New("no")) }, bus.Options{Name: "bad"})
	publish(t, b, &bus.Event{Type: "T"})
	publish(t, b, &bus.Event{Type: "T"})
	_, _ = b.Publish(t.Context(), &bus.Event{Type: "T", ID: "drop"})

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pyrite_bus_published_total", map[string]string{"bus": "test", "type": "T"}, 3},
		{"pyrite_bus_deliveries_total", map[string]string{"bus": "test", "type": "T", "handler": "ok", "outcome": "ok"}, 2},
		{"pyrite_bus_deliveries_total", map[string]string{"bus": "test", "type": "T", "handler": "bad", "outcome": "permanent"}, 2},
		{"pyrite_bus_middleware_total", map[string]string{"bus": "test", "type": "T", "outcome": "dropped"}, 1},
	} {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// metricValue returns the value of the counter or gauge name with exactly labels, 0 if
// there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
