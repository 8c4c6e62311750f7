package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestCompression(t *testing.T) {
	tests := []struct {
		name string
		env  string
		args []string
		want Compression
		bad  bool
	}{
		{name: "default", want: DefaultCompression},
		{name: "env", env: "ZSTD", want: "zstd"},
		{name: "flag wins", env: "gzip", args: []string{"--compression", "lz4"}, want: "lz4"},
		{name: "snappy", args: []string{"--compression=snappy"}, want: "snappy"},
		{name: "unknown flag value", args: []string{"--compression", "brotli"}, bad: true},
		{name: "unknown env value", env: "lzma", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PYRITE_COMPRESSION", tt.env)
			var c Common
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.Bind(fs, "127.0.0.1:1")
			err := fs.Parse(tt.args)
			if err == nil {
				err = c.Validate()
			}
			if tt.bad {
				if err == nil || !strings.Contains(err.Error(), "--compression") {
					t.Fatalf("err = %v, want a --compression problem", err)
				}
				return
			}
			if err != nil || c.Compression != tt.want || len(c.Compression.KafkaOpts()) != 1 {
				t.Fatalf("= %q, %v; want %q with one producer option", c.Compression, err, tt.want)
			}
		})
	}
}
