package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// runCLI runs the CLI in-process and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    []string // substrings
		stderr    []string
		notStdout []string
		notStderr []string
	}{
		{name: "no command", args: nil, code: 2, stderr: []string{"Usage: pyrite <command>", "topology", "schema", "dev", "needs a command"}},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"topology", "schema", "dev", "Exit codes: 0 ok, 1 failure or findings"}},
		{name: "-h", args: []string{"-h"}, code: 0, stdout: []string{"Commands:"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "help topology", args: []string{"help", "topology"}, code: 0, stdout: []string{"Usage: pyrite topology <command>", "plan", "apply"}},
		{name: "topology without subcommand", args: []string{"topology"}, code: 2, stderr: []string{"plan", "apply", "needs a command"}},
		{name: "topology bad subcommand", args: []string{"topology", "destroy"}, code: 2, stderr: []string{`unknown command "destroy"`}},
		{name: "plan -h", args: []string{"topology", "plan", "-h"}, code: 0,
			stderr: []string{"Usage: pyrite topology plan [flags]", "-brokers", "PYRITE_BROKERS", "-profile", "-timeout", "-exit-code", "Exit code 0"}},
		{name: "apply -h", args: []string{"topology", "apply", "--help"}, code: 0,
			stderr: []string{"Usage: pyrite topology apply [flags]", "-brokers", "-profile", "never deletes"}},
		{name: "schema check -h", args: []string{"schema", "check", "-h"}, code: 0,
			stderr: []string{"Usage: pyrite schema check [flags]", "-registry", "PYRITE_REGISTRY", "-dir", "-timeout", "field path"}},
		{name: "schema register -h", args: []string{"schema", "register", "-h"}, code: 0,
			stderr: []string{"Usage: pyrite schema register [flags]", "-registry", "again changes nothing"}},
		{name: "help schema", args: []string{"help", "schema"}, code: 0, stdout: []string{"register", "check"}},
		{name: "undefined flag", args: []string{"topology", "plan", "--nope"}, code: 2,
			stderr: []string{"flag provided but not defined: -nope", "Usage: pyrite topology plan"}, notStderr: []string{"pyrite: usage"}},
		{name: "bad profile and brokers reported together", args: []string{"topology", "plan", "--profile", "staging", "--brokers", "nohostport"}, code: 2,
			stderr: []string{`--profile: topology: unknown profile "staging"`, `--brokers: "nohostport" is not host:port`}},
		{name: "empty brokers", args: []string{"topology", "apply", "--brokers", " , "}, code: 2, stderr: []string{"--brokers: at least one broker"}},
		{name: "bad timeout", args: []string{"topology", "plan", "--timeout", "0s"}, code: 2, stderr: []string{"--timeout"}},
		{name: "positional argument", args: []string{"topology", "plan", "extra"}, code: 2, stderr: []string{`unexpected arguments ["extra"]`}},
		{name: "bad registry URL", args: []string{"schema", "check", "--registry", "ftp://x"}, code: 2, stderr: []string{`--registry: "ftp://x" is not an http(s) URL`}},
		{name: "missing dir", args: []string{"schema", "register", "--dir", "/nonexistent/schemas"}, code: 2, stderr: []string{`--dir: "/nonexistent/schemas" is not a directory`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			for _, s := range tt.notStdout {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.notStderr {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr has %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// TestEveryFlagHasHelp: every flag line printed by -h has text after it.
func TestEveryFlagHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"topology", "plan", "-h"}, {"topology", "apply", "-h"},
		{"schema", "register", "-h"}, {"schema", "check", "-h"},
		{"txn", "list", "-h"}, {"txn", "abort", "-h"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			_, _, stderr := runCLI(t, args...)
			_, flags, ok := strings.Cut(stderr, "Flags:\n")
			if !ok {
				t.Fatalf("no Flags section:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(flags, "\n"), "\n")
			seen := 0
			for i := 0; i < len(lines); i++ {
				l := lines[i]
				if !strings.HasPrefix(l, "  -") {
					continue
				}
				// flag prints the usage on the same line for bool flags
				// without a value name, else on the next, tab-indented.
				seen++
				name, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
				help := strings.TrimSpace(rest)
				if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
					help += strings.TrimSpace(lines[i+1])
				}
				if len(strings.Fields(help)) < 3 {
					t.Errorf("flag %s has no help text: %q", name, help)
				}
			}
			if seen < 3 {
				t.Errorf("found %d flags in -h output, want at least 3:\n%s", seen, stderr)
			}
		})
	}
}
