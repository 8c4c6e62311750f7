package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	t.Run("every flag has help naming its environment variable", func(t *testing.T) {
		var c cfg
		fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.bind(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage == "" || !strings.Contains(f.Usage, "PYRITE_") {
				t.Errorf("--%s: help %q names no PYRITE_ variable", f.Name, f.Usage)
			}
		})
	})
	t.Run("environment over default, flag over environment", func(t *testing.T) {
		t.Setenv("PYRITE_GROUP", "g-env")
		t.Setenv("PYRITE_DEDUPE_WINDOW", "2h")
		t.Setenv("PYRITE_DEDUPE_MAX", "10")
		var c cfg
		fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
		c.bind(fs)
		if err := fs.Parse([]string{"--dedupe-max", "20", "--advertise", "http://ingest-1:8080"}); err != nil {
			t.Fatal(err)
		}
		if c.Group != "g-env" || c.DedupeWindow != 2*time.Hour || c.DedupeMax != 20 || c.Advertise != "http://ingest-1:8080" {
			t.Errorf("cfg %+v", c)
		}
		if err := c.validate(); err != nil {
			t.Errorf("validate: %v", err)
		}
	})
	t.Run("every problem is reported at once", func(t *testing.T) {
		t.Setenv("PYRITE_SESSION_TIMEOUT", "soon")
		var c cfg
		fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
		c.bind(fs)
		if err := fs.Parse([]string{"--group", "", "--advertise", "ingest:8080", "--dedupe-max", "0", "--dedupe-window", "0s"}); err != nil {
			t.Fatal(err)
		}
		err := c.validate()
		for _, want := range []string{"--group", "--advertise", "--dedupe-max", "--dedupe-window", "PYRITE_SESSION_TIMEOUT"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %s", err, want)
			}
		}
	})
}
