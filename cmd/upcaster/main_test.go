package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error; nil for success
	}{
		{name: "defaults", args: nil},
		{name: "at-least-once needs no txn id", args: []string{"--mode", "at-least-once", "--txn-id", ""}},
		{name: "every problem at once", args: []string{"--mode", "sometimes", "--group", "", "--latest-refresh", "1ms",
			"--session-timeout", "0s", "--txn-timeout", "0s", "--max-poll", "0", "--profile", "staging", "--brokers", "nohost"},
			want: []string{"--mode", "--group", "--latest-refresh", "--session-timeout", "--txn-timeout", "--max-poll", "--profile", "--brokers"}},
		{name: "transactional needs a txn id", args: []string{"--txn-id", ""}, want: []string{"--txn-id"}},
		{name: "environment", env: map[string]string{"PYRITE_REGISTRY": "not a url"}, want: []string{"--registry"}},
		{name: "stray argument", args: []string{"extra"}, want: []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"PYRITE_BROKERS", "PYRITE_REGISTRY", "PYRITE_ADDR", "PYRITE_TXN_ID", "PYRITE_PROFILE", "PYRITE_UPCASTER_GROUP", "PYRITE_INSTANCE_ID"} {
				t.Setenv(k, tt.env[k])
			}
			var stderr bytes.Buffer
			_, err := parse(tt.args, &stderr)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s: %v", w, err)
				}
			}
		})
	}
}

func TestEveryFlagHasHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parse([]string{"-h"}, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, name := range []string{"brokers", "registry", "addr", "profile", "group", "txn-id", "instance-id", "mode", "latest-refresh", "session-timeout", "txn-timeout", "max-poll"} {
		if !strings.Contains(stderr.String(), "-"+name) {
			t.Errorf("no help for --%s:\n%s", name, stderr.String())
		}
	}
}
