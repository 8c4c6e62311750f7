package upcaster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// BenchmarkProcess is the CPU cost of upcasting one raw record (no Kafka): a ProgressUpdated
// v1 value with no headers, carried to v3, with every CloudEvents header derived; beside it
// the cost of a v3 value that only needs validating and headers.
func BenchmarkProcess(b *testing.B) {
	s := stacktest.Start(b)
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	rc.CachingEnabled(false)
	c := codec.New(rc)
	chain, err := domain.Chain([]domain.Module{workeffort.Module()})
	if err != nil {
		b.Fatal(err)
	}
	p, err := newProcessor(upcast.New(c, chain, rc), s.Topology, "")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []int{1, 3} {
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) {
			sch, err := c.Version(ctx, "pyrite.workeffort.ProgressUpdated", v)
			if err != nil {
				b.Fatal(err)
			}
			val, err := c.Encode(sch, workeffort.ProgressUpdatedV3{OldProgress: 1, NewProgress: 2, Delta: 1, Formatted: "2%"})
			if err != nil {
				b.Fatal(err)
			}
			rec := &kgo.Record{Topic: "pyrite.work-effort.raw", Partition: 1, Offset: 12345, Key: []byte("we-1"), Value: val, Timestamp: time.Now()}
			var sc scratch
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%5000 == 0 {
					sc.reset()
				}
				o, err := p.process(ctx, rec, &sc)
				if err != nil || o.reason != "" {
					b.Fatal(err, o.reason)
				}
			}
		})
	}
}
