package workeffort

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// ProgressUpdatedV1 is pyrite.workeffort.ProgressUpdated version 1.
type ProgressUpdatedV1 struct {
	OldProgress int32 `avro:"oldProgress"`
	NewProgress int32 `avro:"newProgress"`
}

// ProgressUpdatedV2 is version 2: it adds delta.
type ProgressUpdatedV2 struct {
	OldProgress int32 `avro:"oldProgress"`
	NewProgress int32 `avro:"newProgress"`
	Delta       int32 `avro:"delta"`
}

// ProgressUpdatedV3 is version 3: it adds formatted.
type ProgressUpdatedV3 struct {
	OldProgress int32  `avro:"oldProgress"`
	NewProgress int32  `avro:"newProgress"`
	Delta       int32  `avro:"delta"`
	Formatted   string `avro:"formatted"`
}

// ErrOutOfRange means a computed field does not fit its Avro type.
var ErrOutOfRange = errors.New("workeffort: value out of range")

// ProgressUpdatedV1ToV2 sets delta = newProgress - oldProgress, as the seed's
// upcastProgressUpdatedV1. A difference beyond Avro int's range wraps ErrOutOfRange.
func ProgressUpdatedV1ToV2(v ProgressUpdatedV1) (ProgressUpdatedV2, error) {
	d := int64(v.NewProgress) - int64(v.OldProgress)
	if d < math.MinInt32 || d > math.MaxInt32 {
		return ProgressUpdatedV2{}, fmt.Errorf("%w: delta %d does not fit an Avro int", ErrOutOfRange, d)
	}
	return ProgressUpdatedV2{OldProgress: v.OldProgress, NewProgress: v.NewProgress, Delta: int32(d)}, nil
}

// ProgressUpdatedV2ToV3 sets formatted = "<newProgress>%", as the seed's
// upcastProgressUpdatedV2.
func ProgressUpdatedV2ToV3(v ProgressUpdatedV2) (ProgressUpdatedV3, error) {
	return ProgressUpdatedV3{
		OldProgress: v.OldProgress, NewProgress: v.NewProgress, Delta: v.Delta,
		Formatted: strconv.Itoa(int(v.NewProgress)) + "%",
	}, nil
}

// Upcasts registers the WorkEffort steps on c: ProgressUpdated v1 to v2 and v2 to v3 (the
// seed's upcasting example). Every other step of every WorkEffort event is left to schema
// resolution.
func Upcasts(c *upcast.Chain) error {
	return errors.Join(
		upcast.Register(c, TypeProgressUpdated, 1, ProgressUpdatedV1ToV2),
		upcast.Register(c, TypeProgressUpdated, 2, ProgressUpdatedV2ToV3),
	)
}
