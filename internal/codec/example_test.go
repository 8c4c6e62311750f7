package codec_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/schemas"
)

// schemaText returns the text of one schema file.
func schemaText(subject string, version int) string {
	files, err := schemas.All()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range files {
		if f.Subject == subject && f.Version == version {
			return f.Text
		}
	}
	log.Fatalf("no schema %s v%d", subject, version)
	return ""
}

// The wire format of WorkEffort:ProgressUpdated v3 {10, 60, 50, "60%"} registered as schema
// ID 42: magic byte, big-endian ID, then the Avro body (zig-zag varints 10, 60, 50 and the
// length-prefixed string).
func ExampleCodec_Encode() {
	// In production: c := codec.New(srclient.NewSchemaRegistryClient(url)) with its cache
	// off, and s, err := c.Latest(ctx, subject).
	c := codec.New(nil)
	s, err := codec.NewSchema(42, "", 3, schemaText("pyrite.workeffort.ProgressUpdated", 3))
	if err != nil {
		log.Fatal(err)
	}
	data, err := c.Encode(s, map[string]any{"oldProgress": 10, "newProgress": 60, "delta": 50, "formatted": "60%"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("% x\n", data)
	id, body, _ := codec.SplitFrame(data)
	fmt.Printf("id %d, body % x\n", id, body)
	// Output:
	// 00 00 00 00 2a 14 78 64 06 36 30 25
	// id 42, body 14 78 64 06 36 30 25
}

func ExampleFromJSON() {
	s, err := codec.NewSchema(42, "", 3, schemaText("pyrite.workeffort.ProgressUpdated", 3))
	if err != nil {
		log.Fatal(err)
	}
	v, err := codec.FromJSON(s, []byte(`{"oldProgress": 10, "newProgress": 60}`))
	fmt.Println(v, err)

	_, err = codec.FromJSON(s, []byte(`{"oldProgress": "ten", "percent": 60}`))
	var fes *codec.FieldErrors
	if errors.As(err, &fes) {
		for _, fe := range *fes {
			fmt.Printf("%s: %s\n", fe.Field, fe.Message)
		}
	}
	fmt.Println(errors.Is(err, codec.ErrInvalidData))
	// Output:
	// map[delta:0 formatted: newProgress:60 oldProgress:10] <nil>
	// oldProgress: must be an integer, got a string
	// percent: unknown field
	// newProgress: required field is missing
	// true
}
