package main

import (
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// leafCommands returns the path of every command that runs something ("schema check",
// "lag"), from the same list help and completion use.
func leafCommands() [][]string {
	var out [][]string
	var walk func(path []string, cs []command)
	walk = func(path []string, cs []command) {
		for _, c := range cs {
			p := append(slices.Clone(path), c.name)
			if c.run != nil {
				out = append(out, p)
			}
			walk(p, c.subs)
		}
	}
	walk(nil, topCommands())
	return out
}

// TestEveryCommandAcceptsGlobalFlags: every command parses --brokers and --registry
// (before -h, so an unknown flag would fail the parse with exit 2) and lists them.
func TestEveryCommandAcceptsGlobalFlags(t *testing.T) {
	leaves := leafCommands()
	if len(leaves) < 15 {
		t.Fatalf("only %d commands: %v", len(leaves), leaves)
	}
	for _, path := range leaves {
		t.Run(strings.Join(path, " "), func(t *testing.T) {
			args := append(slices.Clone(path), "--brokers", "127.0.0.1:1", "--registry", "http://127.0.0.1:1", "-h")
			code, _, stderr := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			for _, f := range []string{"-brokers", "-registry"} {
				if !strings.Contains(stderr, "  "+f) {
					t.Errorf("help does not list %s:\n%s", f, stderr)
				}
			}
		})
	}
}

// TestHelpListsEveryCommand: pyrite help gives every command, subcommands included, one
// line each with its summary.
func TestHelpListsEveryCommand(t *testing.T) {
	code, stdout, _ := runCLI(t, "help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(stdout, "\n")
	for _, path := range leafCommands() {
		name := strings.Join(path, " ")
		n := 0
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l), name+"  "); ok && strings.TrimSpace(rest) != "" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("help has %d lines for %q, want 1:\n%s", n, name, stdout)
		}
	}
	if !strings.Contains(stdout, "--brokers, --registry") {
		t.Errorf("help does not name the global flags:\n%s", stdout)
	}
}

// TestCompletion: bash completes commands, subcommands and flags (the script is run in
// bash); the zsh script has every command with its summary.
func TestCompletion(t *testing.T) {
	code, script, stderr := runCLI(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to run the completion script")
	}
	tests := []struct {
		words []string // the command line, the last word being completed
		want  []string
	}{
		{[]string{"pyrite", "d"}, []string{"dev", "dlq"}},
		{[]string{"pyrite", "schema", ""}, []string{"register", "check", "readers"}},
		{[]string{"pyrite", "schema", "readers", "re"}, []string{"register", "remove"}},
		{[]string{"pyrite", "--brokers", "x:1", "dlq", "re"}, []string{"redrive"}},
		{[]string{"pyrite", "lag", "--re"}, []string{"--registry"}},
		{[]string{"pyrite", "tail", "x"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			var quoted []string
			for _, w := range tt.words {
				quoted = append(quoted, zshQuote(w))
			}
			prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
				strconv.Itoa(len(tt.words)-1) + "\n_pyrite\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
			out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			got := strings.Fields(string(out))
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("completions %v, want %v", got, want)
			}
		})
	}

	code, zsh, _ := runCLI(t, "completion", "zsh")
	if code != 0 || !strings.HasPrefix(zsh, "#compdef pyrite\n") {
		t.Fatalf("exit %d:\n%s", code, zsh)
	}
	for _, path := range leafCommands() {
		c := path[len(path)-1]
		if !strings.Contains(zsh, "'"+c+":") {
			t.Errorf("zsh script lacks %q", c)
		}
	}
	if z, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command(z, "-n", "-c", zsh).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v: %s", err, out)
		}
	}
	if code, _, _ := runCLI(t, "completion", "fish"); code != 2 {
		t.Errorf("completion fish: exit %d, want 2", code)
	}
}

// TestTailOutput: tail takes --output json (what it prints) and refuses another format.
func TestTailOutput(t *testing.T) {
	if code, _, stderr := runCLI(t, "tail", "t", "--output", "json", "-h"); code != 0 {
		t.Errorf("--output json: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "tail", "t", "--output", "text", "--brokers", "127.0.0.1:1"); code != 2 || !strings.Contains(stderr, "--output") {
		t.Errorf("--output text: exit %d: %s", code, stderr)
	}
}
