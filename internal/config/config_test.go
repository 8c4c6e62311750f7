package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
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

func TestDefaults(t *testing.T) {
	t.Setenv("PYRITE_N", "12")
	t.Setenv("PYRITE_B", "false")
	t.Setenv("PYRITE_D", "250ms")
	t.Setenv("PYRITE_BAD_N", "twelve")
	t.Setenv("PYRITE_BAD_D", "soon")
	var d Defaults
	if got := d.Int("PYRITE_N", 1); got != 12 {
		t.Errorf("Int = %d", got)
	}
	if got := d.Bool("PYRITE_B", true); got {
		t.Errorf("Bool = %v", got)
	}
	if got := d.Duration("PYRITE_D", time.Second); got != 250*time.Millisecond {
		t.Errorf("Duration = %v", got)
	}
	if got := d.Int("PYRITE_UNSET", 7); got != 7 {
		t.Errorf("unset Int = %d", got)
	}
	if d.Err() != nil {
		t.Fatalf("Err = %v before any bad value", d.Err())
	}
	if got := d.Int("PYRITE_BAD_N", 3); got != 3 {
		t.Errorf("bad Int = %d, want the default", got)
	}
	d.Duration("PYRITE_BAD_D", time.Second)
	err := d.Err()
	if err == nil || !strings.Contains(err.Error(), `PYRITE_BAD_N="twelve" is not an integer`) || !strings.Contains(err.Error(), "PYRITE_BAD_D") {
		t.Errorf("Err = %v, want both bad values named", err)
	}
}

func TestRegistryErrorHidesPassword(t *testing.T) {
	for _, reg := range []string{"ftp://u:hunter22@x", "http//u:hunter22@x:1", "http://u:hunter22@"} {
		c := Common{Brokers: []string{"k:1"}, Registry: reg, Addr: "a:1"}
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: no error", reg)
			continue
		}
		if strings.Contains(err.Error(), "hunter22") {
			t.Errorf("error %q shows the password", err)
		}
	}
	if got := RedactURL("http://u:hunter22@x:1"); got != "http://u:xxxxx@x:1" {
		t.Errorf("RedactURL = %q", got)
	}
}
