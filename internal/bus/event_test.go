package bus_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

func hdrs(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestHeadersRoundTrip(t *testing.T) {
	ev := &bus.Event{
		ID: "0b7e6c1c-7f2a-4a43-9d1f-3f0e0c7d2a11", Type: "WorkEffort:ProgressUpdated", AggregateID: "we-1",
		AggregateType: "WorkEffort", AggregateVersion: 7, Time: time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC),
		Source: "pyrite/ingest", CorrelationID: "corr", CausationID: "cause", UserID: "u1",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Extensions:  map[string]string{"hostname": "h", "processid": "12"},
	}
	hs := ev.Headers()
	want := hdrs(
		"ce_specversion", "1.0", "ce_id", ev.ID, "ce_source", "pyrite/ingest", "ce_type", ev.Type,
		"ce_time", "2025-03-04T05:06:07.00000089Z", "content-type", "application/avro",
		"ce_subject", "we-1", "ce_aggregatetype", "WorkEffort", "ce_aggregateversion", "7",
		"ce_correlationid", "corr", "ce_causationid", "cause", "ce_userid", "u1",
		"traceparent", ev.TraceParent, "ce_hostname", "h", "ce_processid", "12",
	)
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("Headers() =\n%v\nwant\n%v", hs, want)
	}
	var got bus.Event
	if err := got.ApplyHeaders(hs); err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(ev.Time) {
		t.Fatalf("time %v, want %v", got.Time, ev.Time)
	}
	got.Time = ev.Time
	if !reflect.DeepEqual(&got, ev) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", got, *ev)
	}
}

func TestApplyHeaders(t *testing.T) {
	tests := []struct {
		name    string
		hs      []kgo.RecordHeader
		check   func(*bus.Event) error
		wantErr []string // substrings; nil means no error
	}{
		{
			name: "last value wins; other headers ignored",
			hs:   hdrs("ce_id", "a", "ce_id", "b", "x-other", "1", "content-type", "application/avro"),
			check: func(ev *bus.Event) error {
				if ev.ID != "b" || ev.Extensions != nil {
					return fmt.Errorf("id %q, extensions %v", ev.ID, ev.Extensions)
				}
				return nil
			},
		},
		{
			name: "unknown ce attributes become extensions",
			hs:   hdrs("ce_hostname", "h", "ce_", "ignored"),
			check: func(ev *bus.Event) error {
				if len(ev.Extensions) != 1 || ev.Extensions["hostname"] != "h" {
					return fmt.Errorf("extensions %v", ev.Extensions)
				}
				return nil
			},
		},
		{
			name: "time with offset",
			hs:   hdrs("ce_time", "2025-01-02T03:04:05+02:00"),
			check: func(ev *bus.Event) error {
				if !ev.Time.Equal(time.Date(2025, 1, 2, 1, 4, 5, 0, time.UTC)) {
					return fmt.Errorf("time %v", ev.Time)
				}
				return nil
			},
		},
		{
			name:    "every bad header is reported, the good ones applied",
			hs:      hdrs("ce_specversion", "0.3", "ce_time", "yesterday", "ce_aggregateversion", "seven", "ce_id", "kept"),
			check:   func(ev *bus.Event) error { return errorIf(ev.ID != "kept", "id %q", ev.ID) },
			wantErr: []string{"ce_specversion", "ce_time", "ce_aggregateversion"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ev bus.Event
			err := ev.ApplyHeaders(tc.hs)
			if tc.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wantErr {
				if !errors.Is(err, bus.ErrBadHeader) || !strings.Contains(fmt.Sprint(err), w) {
					t.Errorf("error %v does not report %s", err, w)
				}
			}
			if err := tc.check(&ev); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func errorIf(cond bool, format string, args ...any) error {
	if cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}

// FuzzApplyHeaders feeds arbitrary headers (outside input: any producer may write them).
// ApplyHeaders must not panic, and what it accepts must survive Headers/ApplyHeaders.
func FuzzApplyHeaders(f *testing.F) {
	f.Add("ce_id\x00abc\x00ce_time\x002025-01-02T03:04:05Z\x00ce_aggregateversion\x003")
	f.Add("ce_specversion\x001.0\x00ce_type\x00WorkEffort:Started\x00ce_foo\x00bar")
	f.Add("ce_time\x00bad\x00ce_\x00x")
	f.Fuzz(func(t *testing.T, s string) {
		parts := strings.Split(s, "\x00")
		var ev bus.Event
		if err := ev.ApplyHeaders(hdrs(parts...)); err != nil {
			if !errors.Is(err, bus.ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		var again bus.Event
		if err := again.ApplyHeaders(ev.Headers()); err != nil {
			t.Fatalf("re-reading written headers: %v", err)
		}
		if !again.Time.Equal(ev.Time) {
			t.Fatalf("time %v became %v", ev.Time, again.Time)
		}
		again.Time = ev.Time
		if len(ev.Extensions) == 0 && len(again.Extensions) == 0 {
			again.Extensions = ev.Extensions
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, again)
		}
	})
}

// Headers' values share one buffer: each is capped at its own length, so that appending to
// one (as a caller adding to a header may) leaves the others as they were.
func TestHeadersValuesAreSeparate(t *testing.T) {
	ev := &bus.Event{ID: "id-1", Type: "WorkEffort:Started", Source: "/src", AggregateID: "we-1", AggregateVersion: 3,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Extensions: map[string]string{"hostname": "h"}}
	hs := ev.Headers()
	want := make([]string, len(hs))
	for i, h := range hs {
		want[i] = string(h.Value)
	}
	for i := range hs {
		_ = append(hs[i].Value, "XXXXXXXX"...)
	}
	for i, h := range hs {
		if string(h.Value) != want[i] {
			t.Errorf("%s = %q after appending to the others, want %q", h.Key, h.Value, want[i])
		}
	}
	var back bus.Event
	if err := back.ApplyHeaders(hs); err != nil {
		t.Fatal(err)
	}
	if back.ID != ev.ID || back.AggregateVersion != 3 || !back.Time.Equal(ev.Time) || back.Extensions["hostname"] != "h" {
		t.Fatalf("round trip: %+v", back)
	}
}

// Headers sizes its result up front (the producer path builds one per record): the headers
// fill it exactly, whichever optional attributes are set, and extensions that would be read
// back as an attribute (or have no name) are left out, their values included.
func TestHeadersExactlySized(t *testing.T) {
	tm := time.Date(2026, 12, 6, 3, 50, 0, 120000000, time.UTC)
	tests := []struct {
		name string
		ev   bus.Event
		want int
	}{
		{"required only", bus.Event{ID: "id-1", Type: "WorkEffort:Started", Source: "/src"}, 5},
		{"as ingest writes", bus.Event{ID: "id-1", Type: "WorkEffort:Started", Source: "/src", Time: tm,
			AggregateID: "we-1", AggregateType: "WorkEffort", AggregateVersion: 3}, 9},
		{"every attribute", bus.Event{ID: "id-1", Type: "WorkEffort:Started", Source: "/src", Time: tm,
			AggregateID: "we-1", AggregateType: "WorkEffort", AggregateVersion: 3, CorrelationID: "c",
			CausationID: "d", UserID: "u", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, 13},
		{"extensions, some reserved", bus.Event{ID: "id-1", Type: "WorkEffort:Started", Source: "/src",
			Extensions: map[string]string{"hostname": "h", "id": "not-the-id", "": "nameless", "zone": "z"}}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := tc.ev.Headers()
			if len(hs) != tc.want || cap(hs) != len(hs) {
				t.Fatalf("%d headers in a slice of capacity %d, want %d in %d: %v", len(hs), cap(hs), tc.want, tc.want, hs)
			}
			for _, h := range hs {
				if v := string(h.Value); v == "not-the-id" || v == "nameless" {
					t.Fatalf("header %s = %q: a reserved or nameless extension was written", h.Key, v)
				}
			}
			var back bus.Event
			if err := back.ApplyHeaders(hs); err != nil {
				t.Fatal(err)
			}
			if back.ID != tc.ev.ID || back.AggregateVersion != tc.ev.AggregateVersion || !back.Time.Equal(tc.ev.Time) ||
				back.Extensions["hostname"] != tc.ev.Extensions["hostname"] {
				t.Fatalf("round trip: %+v", back)
			}
		})
	}
}
