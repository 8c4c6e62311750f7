package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// BenchmarkDecodeRecord measures the runner's per-record work before dispatch, the
// CodecDecoder on a ProgressUpdated record as ingest writes it (newest schema, CloudEvents
// headers), beside the Watermill side of bench/watermill's BenchmarkRunner in the same run:
// hamba/avro unmarshalling the body into a map, with the headers left as the strings
// Watermill's marshaler makes of them. It also measures Event.Headers, the producer path's
// envelope.
func BenchmarkDecodeRecord(b *testing.B) {
	reg := newMemRegistry(&testing.T{})
	c := codec.New(reg)
	topo, err := topology.New(topology.Dev)
	if err != nil {
		b.Fatal(err)
	}
	files, err := bus.NewCodecDecoder(c, topo, mustFiles(&testing.T{}))
	if err != nil {
		b.Fatal(err)
	}
	dec := files
	sch, err := c.ByID(context.Background(), reg.ids["pyrite.workeffort.ProgressUpdated v3"])
	if err != nil {
		b.Fatal(err)
	}
	value, err := c.Encode(sch, map[string]any{"oldProgress": 41, "newProgress": 42, "delta": 1, "formatted": "42%"})
	if err != nil {
		b.Fatal(err)
	}
	ev := &bus.Event{ID: "0b0e8f1c-6b7a-4c1e-9d1f-1e2d3c4b5a69", Type: "WorkEffort:ProgressUpdated", AggregateID: "we-42",
		AggregateType: "WorkEffort", AggregateVersion: 17, Time: time.Date(2026, 12, 6, 2, 30, 0, 123456789, time.UTC),
		Source: "/pyrite/ingest", CorrelationID: "0b0e8f1c-6b7a-4c1e-9d1f-1e2d3c4b5a69",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	rec := &kgo.Record{Topic: "pyrite.work-effort.events", Key: []byte("we-42"), Value: value, Headers: ev.Headers()}
	ctx := context.Background()

	b.Run("pyrite CodecDecoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := dec.Decode(ctx, rec)
			if err != nil || got.Data["newProgress"] != 42 {
				b.Fatal(got, err)
			}
		}
	})
	b.Run("peer hamba map and header strings", func(b *testing.B) {
		schema, err := avro.Parse(sch.Text)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			md := make(map[string]string, len(rec.Headers))
			for _, h := range rec.Headers {
				md[h.Key] = string(h.Value)
			}
			var v map[string]any
			if err := avro.Unmarshal(schema, rec.Value[codec.HeaderSize:], &v); err != nil || v["newProgress"] != 42 {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("Event.Headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if len(ev.Headers()) < 10 {
				b.Fatal("headers missing")
			}
		}
	})
}
