package config

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultCompression is what producers compress record batches with unless told otherwise:
// none, which every Kafka client reads without a codec package. (franz-go on its own
// defaults to snappy, which KafkaJS reads only with kafkajs-snappy installed.)
const DefaultCompression = "none"

// Compressions lists the values --compression takes.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Compression is a producer's batch compression, from --compression or
// PYRITE_COMPRESSION.
type Compression string

// BindCompression registers --compression on fs, defaulting to PYRITE_COMPRESSION or
// DefaultCompression.
func (c *Compression) BindCompression(fs *flag.FlagSet) {
	*c = Compression(strings.ToLower(Env("PYRITE_COMPRESSION", DefaultCompression)))
	fs.Func("compression", "record batch compression of every producer: "+strings.Join(Compressions, ", ")+
		" (env PYRITE_COMPRESSION, default "+DefaultCompression+"; KafkaJS reads none and gzip as it is, snappy, lz4 and zstd only with a codec package)",
		func(s string) error {
			*c = Compression(strings.ToLower(strings.TrimSpace(s)))
			return c.Validate()
		})
}

// Validate reports a value that is not one of Compressions.
func (c Compression) Validate() error {
	if !slices.Contains(Compressions, string(c)) {
		return fmt.Errorf("--compression: %q is not one of %s", string(c), strings.Join(Compressions, ", "))
	}
	return nil
}

// KafkaOpts returns the producer option for c (none for an invalid value: Validate first).
func (c Compression) KafkaOpts() []kgo.Opt {
	var codec kgo.CompressionCodec
	switch c {
	case "none":
		codec = kgo.NoCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil
	}
	return []kgo.Opt{kgo.ProducerBatchCompression(codec)}
}
