package upcast

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ProgressUpdated is the event type of the seed's upcasting example.
const ProgressUpdated = "WorkEffort:ProgressUpdated"

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
var ErrOutOfRange = errors.New("upcast: value out of range")

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

// Default returns the chain of Pyrite's events: ProgressUpdated v1 to v2 and v2 to v3. Every
// other step of every event is left to schema resolution.
func Default() (*Chain, error) {
	c := NewChain()
	err := errors.Join(
		Register(c, ProgressUpdated, 1, ProgressUpdatedV1ToV2),
		Register(c, ProgressUpdated, 2, ProgressUpdatedV2ToV3),
	)
	if err != nil {
		return nil, err
	}
	return c, nil
}
