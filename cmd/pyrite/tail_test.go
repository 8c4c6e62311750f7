package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// Helpers shared by the tests of the operating commands (tail, lag, replay, dlq, projection).

const weEvents = "pyrite.work-effort.events"

// opsArgs returns args with the stack's brokers and registry.
func opsArgs(s *stacktest.Stack, args ...string) []string {
	return append(args, "--brokers", strings.Join(s.Brokers, ","), "--registry", s.RegistryURL)
}

// kafkaArgs returns args with the stack's brokers, for commands that do not decode values.
func kafkaArgs(s *stacktest.Stack, args ...string) []string {
	return append(args, "--brokers", strings.Join(s.Brokers, ","))
}

// created is a WorkEffort:Created record of id, version 1, stamped at.
func created(t *testing.T, s *stacktest.Stack, id string, at time.Time) *kgo.Record {
	t.Helper()
	r := s.Record(t, weEvents, "WorkEffort:Created", id, 1, map[string]any{"title": "Title " + id, "createdAt": at})
	r.Timestamp = at
	return r
}

// started is a WorkEffort:Started record of id, version 2, stamped at.
func started(t *testing.T, s *stacktest.Stack, id string, at time.Time) *kgo.Record {
	t.Helper()
	r := s.Record(t, weEvents, "WorkEffort:Started", id, 2, map[string]any{"title": "Title " + id, "startedAt": at})
	r.Timestamp = at
	return r
}

// jsonLines decodes one JSON object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// at names a record by partition and offset.
func at(p int32, o int64) string { return fmt.Sprintf("%d@%d", p, o) }

func positionsOf(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, at(r.Partition, r.Offset))
	}
	slices.Sort(out)
	return out
}

func linePositions(lines []map[string]any) []string {
	var out []string
	for _, l := range lines {
		out = append(out, at(int32(l["partition"].(float64)), int64(l["offset"].(float64))))
	}
	slices.Sort(out)
	return out
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestTail(t *testing.T) {
	s := stacktest.Start(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	old, recent := now.Add(-2*time.Hour), now.Add(-time.Minute)
	var olds, news []*kgo.Record
	for i := range 6 {
		olds = append(olds, created(t, s, fmt.Sprintf("we-%d", i), old.Add(time.Duration(i)*time.Second)))
	}
	s.Produce(t, olds...)
	for i := range 6 {
		news = append(news, started(t, s, fmt.Sprintf("we-%d", i), recent.Add(time.Duration(i)*time.Second)))
	}
	bad := &kgo.Record{Topic: weEvents, Key: []byte("bad"), Value: []byte("not avro"), Timestamp: now,
		Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("WorkEffort:Started")}}}
	news = append(news, bad)
	s.Produce(t, news...)
	all := append(slices.Clone(olds), news...)

	byPartition := func(p int32) (out []*kgo.Record) {
		for _, r := range all {
			if r.Partition == p {
				out = append(out, r)
			}
		}
		return out
	}
	fromOffset := func(o int64) (out []*kgo.Record) {
		for _, r := range all {
			if r.Offset >= o {
				out = append(out, r)
			}
		}
		return out
	}
	tests := []struct {
		name  string
		args  []string
		want  []*kgo.Record // nil with count -1: none
		count int           // when want is nil: expected number of lines
	}{
		{name: "earliest", args: []string{"--from", "earliest"}, want: all},
		{name: "default is earliest", args: nil, want: all},
		{name: "latest", args: []string{"--from", "latest"}, count: 0},
		{name: "offset", args: []string{"--from", "offset:1"}, want: fromOffset(1)},
		{name: "offset past the end", args: []string{"--from", "offset:999"}, count: 0},
		{name: "time", args: []string{"--from", "time:" + now.Add(-time.Hour).Format(time.RFC3339)}, want: news},
		{name: "duration", args: []string{"--from", "-90m"}, want: news},
		{name: "partition", args: []string{"--partition", fmt.Sprint(bad.Partition)}, want: byPartition(bad.Partition)},
		{name: "limit", args: []string{"--limit", "3"}, count: 3},
		{name: "type", args: []string{"--type", "WorkEffort:Started"}, want: news},
		{name: "type wildcard and key", args: []string{"--type", "*:Created", "--key", "we-3"}, want: []*kgo.Record{olds[3]}},
		{name: "flags before the topic", args: []string{"--key", "bad", "--from", "earliest"}, want: []*kgo.Record{bad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"tail"}, opsArgs(s, weEvents)...)
			if tt.name == "flags before the topic" {
				args = append([]string{"tail"}, append(tt.args, opsArgs(s, weEvents)...)...)
			} else {
				args = append(args, tt.args...)
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			lines := jsonLines(t, stdout)
			if tt.want == nil {
				if len(lines) != tt.count {
					t.Fatalf("%d lines, want %d:\n%s", len(lines), tt.count, stdout)
				}
				return
			}
			if got, want := linePositions(lines), positionsOf(tt.want); !slices.Equal(got, want) {
				t.Errorf("records %v, want %v", got, want)
			}
		})
	}

	t.Run("what a line holds", func(t *testing.T) {
		_, stdout, _ := runCLI(t, append([]string{"tail"}, opsArgs(s, weEvents, "--key", "we-2", "--type", "*:Created")...)...)
		lines := jsonLines(t, stdout)
		if len(lines) != 1 {
			t.Fatalf("%d lines:\n%s", len(lines), stdout)
		}
		l := lines[0]
		value, _ := l["value"].(map[string]any)
		headers, _ := l["headers"].(map[string]any)
		schema, _ := l["schema"].(map[string]any)
		if l["key"] != "we-2" || l["type"] != "WorkEffort:Created" || l["topic"] != weEvents || value["title"] != "Title we-2" ||
			headers["ce_type"] != "WorkEffort:Created" || schema["subject"] != "pyrite.workeffort.Created" || l["error"] != nil {
			t.Errorf("line = %v", l)
		}
		if ts, _ := l["timestamp"].(string); ts != olds[2].Timestamp.Format(time.RFC3339Nano) {
			t.Errorf("timestamp %q, want %q", ts, olds[2].Timestamp.Format(time.RFC3339Nano))
		}
	})
	t.Run("undecodable value is base64 with an error", func(t *testing.T) {
		code, stdout, _ := runCLI(t, append([]string{"tail"}, opsArgs(s, weEvents, "--key", "bad")...)...)
		lines := jsonLines(t, stdout)
		if code != 0 || len(lines) != 1 {
			t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), stdout)
		}
		if lines[0]["value"] != base64.StdEncoding.EncodeToString([]byte("not avro")) || !strings.Contains(fmt.Sprint(lines[0]["error"]), "magic") {
			t.Errorf("line = %v", lines[0])
		}
	})
	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, append([]string{"tail"}, opsArgs(s, weEvents, "--from", "latest", "--follow", "--type", "*:Created")...), &stdout, &stderr)
		}()
		// The start position is taken when tail starts: produce until a record shows.
		for i := 0; !strings.Contains(stdout.String(), "we-follow"); i++ {
			if ctx.Err() != nil {
				t.Fatalf("no followed record before the deadline; stderr:\n%s", stderr.String())
			}
			s.Produce(t, created(t, s, fmt.Sprintf("we-follow-%d", i), time.Now()))
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("interrupted --follow exited %d: %s", code, stderr.String())
		}
	})
	t.Run("transactions: committed records only, ends at the markers", func(t *testing.T) {
		const topic = "pyrite.system"
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.TransactionalID("tail-test"), kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx := t.Context()
		for _, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort, kgo.TryCommit} {
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(fmt.Sprint(commit))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := cl.EndTransaction(ctx, commit); err != nil {
				t.Fatal(err)
			}
		}
		began := time.Now()
		code, stdout, stderr := runCLI(t, append([]string{"tail"}, opsArgs(s, topic)...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if n := len(jsonLines(t, stdout)); n != 2 {
			t.Errorf("%d records, want the 2 committed ones:\n%s", n, stdout)
		}
		if d := time.Since(began); d > defaultIdle/2 {
			t.Errorf("took %s: it waited for offsets that are transaction markers", d)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"no topic", opsArgs(s), 2, "missing TOPIC"},
			{"two topics", opsArgs(s, "a", "b"), 2, `unexpected arguments ["b"]`},
			{"bad from", opsArgs(s, weEvents, "--from", "yesterday"), 2, `"yesterday" is not earliest, latest`},
			{"future duration", opsArgs(s, weEvents, "--from", "1h"), 2, "must be negative"},
			{"bad time", opsArgs(s, weEvents, "--from", "time:monday"), 2, "RFC 3339"},
			{"bad pattern", opsArgs(s, weEvents, "--type", "WorkEffort::x"), 2, "--type"},
			{"problems together", opsArgs(s, weEvents, "--limit", "-1", "--from", "x", "--brokers", "nope"), 2, "--limit"},
			{"unknown topic", opsArgs(s, "no.such.topic"), 1, "no.such.topic does not exist"},
			{"no such partition", opsArgs(s, weEvents, "--partition", "7"), 1, "has no partition 7"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, _, stderr := runCLI(t, append([]string{"tail"}, tt.args...)...)
				if code != tt.code || !strings.Contains(stderr, tt.stderr) {
					t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.stderr, stderr)
				}
			})
		}
	})
}

// TestOpsHelp: every operating command explains itself, and every flag has help text.
func TestOpsHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"tail", "-h"}, []string{"Usage: pyrite tail TOPIC", "-from", "-follow", "-type", "-key", "-limit", "-partition", "base64"}},
		{[]string{"lag", "-h"}, []string{"Usage: pyrite lag [GROUP...]", "-output", "Exit code"}},
		{[]string{"replay", "-h"}, []string{"Usage: pyrite replay GROUP --to", "-dry-run", "-topic", "pyrite.replays", "live members"}},
		{[]string{"dlq", "list", "-h"}, []string{"Usage: pyrite dlq list GROUP", "-pending", "-output"}},
		{[]string{"dlq", "show", "-h"}, []string{"Usage: pyrite dlq show GROUP", "-at"}},
		{[]string{"dlq", "redrive", "-h"}, []string{"Usage: pyrite dlq redrive GROUP", "-type", "-at", "-dry-run", "one Kafka transaction"}},
		{[]string{"projection", "rebuild", "-h"}, []string{"Usage: pyrite projection rebuild NAME", "-store", "PYRITE_STORE", "-from", "-restart", "progress bar"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:len(tt.args)-1], " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != 0 {
				t.Errorf("exit %d", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("help lacks %q:\n%s", w, stderr)
				}
			}
			_, flags, ok := strings.Cut(stderr, "Flags:\n")
			if !ok {
				t.Fatalf("no Flags section:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(flags, "\n"), "\n")
			for i, l := range lines {
				if !strings.HasPrefix(l, "  -") {
					continue
				}
				name, help, _ := strings.Cut(strings.TrimSpace(l), " ")
				if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
					help += " " + strings.TrimSpace(lines[i+1])
				}
				if len(strings.Fields(help)) < 3 {
					t.Errorf("flag %s has no help text: %q", name, help)
				}
			}
		})
	}
	t.Run("listed in pyrite help", func(t *testing.T) {
		_, stdout, _ := runCLI(t, "help")
		for _, c := range []string{"tail", "lag", "replay", "dlq", "projection"} {
			if !strings.Contains(stdout, "\n  "+c+" ") {
				t.Errorf("pyrite help lacks %s:\n%s", c, stdout)
			}
		}
	})
}

func TestParseStartSpec(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want startSpec
		err  bool
	}{
		{in: "earliest", want: startSpec{text: "earliest", kind: "earliest"}},
		{in: "latest", want: startSpec{text: "latest", kind: "latest"}},
		{in: "offset:42", want: startSpec{text: "offset:42", kind: "offset", offset: 42}},
		{in: "time:2025-03-01T09:00:00Z", want: startSpec{text: "time:2025-03-01T09:00:00Z", kind: "time", at: now.Add(-3 * time.Hour)}},
		{in: "time:2025-03-01T10:00:00+01:00", want: startSpec{text: "time:2025-03-01T10:00:00+01:00", kind: "time", at: now.Add(-3 * time.Hour)}},
		{in: "-1h30m", want: startSpec{text: "-1h30m", kind: "time", at: now.Add(-90 * time.Minute)}},
		{in: "offset:-1", err: true},
		{in: "offset:", err: true},
		{in: "time:2025-03-01", err: true},
		{in: "1h", err: true},
		{in: "0s", err: true},
		{in: "", err: true},
		{in: "beginning", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseStartSpec(tt.in, now)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && (got.kind != tt.want.kind || got.offset != tt.want.offset || !got.at.Equal(tt.want.at) || got.text != tt.want.text) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseStartSpec(f *testing.F) {
	for _, s := range []string{"earliest", "offset:3", "time:2025-03-01T09:00:00Z", "-1h", "offset:-9223372036854775808"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := parseStartSpec(s, now)
		if err != nil {
			return
		}
		switch sp.kind {
		case "earliest", "latest":
		case "offset":
			if sp.offset < 0 {
				t.Errorf("%q: negative offset %d accepted", s, sp.offset)
			}
		case "time":
			if sp.at.IsZero() {
				t.Errorf("%q: zero time", s)
			}
			if !strings.HasPrefix(s, "time:") && !sp.at.Before(now) {
				t.Errorf("%q: a duration gave a time not in the past", s)
			}
		default:
			t.Errorf("%q: kind %q", s, sp.kind)
		}
	})
}
