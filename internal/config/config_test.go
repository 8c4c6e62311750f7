package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestCommonPrecedence(t *testing.T) {
	t.Setenv("PYRITE_BROKERS", "k1:9092, k2:9092")
	t.Setenv("PYRITE_REGISTRY", "http://sr:8081")
	tests := []struct {
		name     string
		args     []string
		brokers  string
		registry string
		addr     string
	}{
		{"environment over default", nil, "k1:9092,k2:9092", "http://sr:8081", "127.0.0.1:1"},
		{"flag over environment", []string{"--brokers", "f:1", "--registry", "http://f:2", "--addr", "0.0.0.0:3"}, "f:1", "http://f:2", "0.0.0.0:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Common
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			c.Bind(fs, "127.0.0.1:1")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(c.Brokers, ","); got != tt.brokers || c.Registry != tt.registry || c.Addr != tt.addr {
				t.Errorf("got brokers %q registry %q addr %q", got, c.Registry, c.Addr)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Common{Brokers: []string{"nohost"}, Registry: "ftp://x", Addr: "nope"}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"--brokers", "--registry", "--addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	(&Common{}).Bind(fs, "a:1")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			t.Errorf("flag %s has no help text", f.Name)
		}
	})
}
