package upcast_test

import (
	"context"
	"fmt"
	"log"
	"strconv"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// A v1 ProgressUpdated {oldProgress 10, newProgress 60} goes through the seed's two functions
// and comes out at v3 with delta and formatted set.
func ExampleUpcaster_Upcast() {
	// In production: rc := srclient.NewSchemaRegistryClient(url) with its cache off,
	// codec.New(rc) and upcast.New(c, chain, rc).
	reg := newFakeRegistry()
	for v := 1; v <= 3; v++ {
		if _, err := reg.add(progress, progressText(v)); err != nil {
			log.Fatal(err)
		}
	}
	c := codec.New(reg)
	chain, err := domain.Chain([]domain.Module{workeffort.Module()})
	if err != nil {
		log.Fatal(err)
	}
	up := upcast.New(c, chain, reg)

	ctx := context.Background()
	v1, _ := c.Version(ctx, progress, 1)
	raw, _ := c.Encode(v1, workeffort.ProgressUpdatedV1{OldProgress: 10, NewProgress: 60})
	w, err := up.WriterOf(ctx, raw)
	if err != nil {
		log.Fatal(err)
	}
	res, err := up.Upcast(ctx, workeffort.TypeProgressUpdated, w, raw, nil)
	if err != nil {
		log.Fatal(err)
	}
	var out workeffort.ProgressUpdatedV3
	if _, err := c.Decode(ctx, res.Value, nil, &out); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("v%d -> v%d: %+v\n", res.From.Version, res.To.Version, out)
	// Output: v1 -> v3: {OldProgress:10 NewProgress:60 Delta:50 Formatted:60%}
}

func progressText(v int) string {
	fields := `{"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"}`
	if v >= 2 {
		fields += `,{"name":"delta","type":"int","default":0}`
	}
	if v >= 3 {
		fields += `,{"name":"formatted","type":"string","default":""}`
	}
	return `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort","doc":"v` + strconv.Itoa(v) + `","fields":[` + fields + `]}`
}
