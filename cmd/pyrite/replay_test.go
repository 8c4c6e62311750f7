package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// committed returns a group's committed offsets as "partition@offset" per topic partition.
func committed(t *testing.T, s *stacktest.Stack, group string) map[int32]int64 {
	t.Helper()
	resp, err := s.Admin.FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == weEvents {
			out[o.Partition] = o.At
		}
	})
	return out
}

// replayRecords reads pyrite.replays.
func replayRecords(t *testing.T, s *stacktest.Stack) []replayMarker {
	t.Helper()
	n := s.EndOffsets(t, topology.ReplaysTopic)[topology.ReplaysTopic]
	if n == 0 {
		return nil
	}
	var out []replayMarker
	for _, r := range s.Consume(t, topology.ReplaysTopic, int(n)) {
		var m replayMarker
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("replay marker %q: %v", r.Value, err)
		}
		if want := replayKey(m.Group, m.Topic, m.Partition); string(r.Key) != want {
			t.Errorf("marker key %q, want %q", r.Key, want)
		}
		out = append(out, m)
	}
	return out
}

func TestReplay(t *testing.T) {
	s := stacktest.Start(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var recs []*kgo.Record
	for h := 3; h >= 1; h-- {
		for i := range 6 {
			recs = append(recs, created(t, s, fmt.Sprintf("we-%d-%d", h, i), now.Add(-time.Duration(h)*time.Hour+time.Duration(i)*time.Second)))
		}
	}
	s.Produce(t, recs...)
	ends, err := s.Admin.ListEndOffsets(ctx, weEvents)
	if err != nil {
		t.Fatal(err)
	}
	const group = "notifications"
	all := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) {
		all.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	if err := s.Admin.CommitAllOffsets(ctx, group, all); err != nil {
		t.Fatal(err)
	}
	before := committed(t, s, group)

	// By time: the first record at or after the cut in each partition.
	cut := now.Add(-2*time.Hour - 30*time.Minute)
	want := map[int32]int64{}
	for p, end := range before {
		want[p] = end
	}
	for _, r := range recs {
		if !r.Timestamp.Before(cut) && r.Offset < want[r.Partition] {
			want[r.Partition] = r.Offset
		}
	}
	to := "time:" + cut.Format(time.RFC3339Nano)

	t.Run("dry run changes nothing", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"replay", group, "--to", to, "--dry-run"}, kafkaArgs(s)...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for p, w := range want {
			row := fmt.Sprintf("%s  %d          %d  %d", weEvents, p, before[p], w)
			if !strings.Contains(stdout, fmt.Sprint(w)) || !strings.Contains(stdout, "dry run") {
				t.Errorf("output lacks partition %d moving to %d (%q):\n%s", p, w, row, stdout)
			}
		}
		if got := committed(t, s, group); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("a dry run moved offsets: %v, before %v", got, before)
		}
		if m := replayRecords(t, s); len(m) != 0 {
			t.Errorf("a dry run wrote replay markers: %v", m)
		}
	})
	t.Run("by time lands on the first record at or after it", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"replay", group, "--to", to, "--output", "json"}, kafkaArgs(s)...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var res replayResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if got := committed(t, s, group); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("committed %v, want %v", got, want)
		}
		for _, m := range res.Partitions {
			if m.Old != before[m.Partition] || m.New != want[m.Partition] {
				t.Errorf("reported %+v, want old %d new %d", m, before[m.Partition], want[m.Partition])
			}
		}
		markers := replayRecords(t, s)
		if len(markers) != len(want) || len(res.Markers) != len(want) {
			t.Fatalf("%d markers on the topic, %d reported; want one per partition (%d)", len(markers), len(res.Markers), len(want))
		}
		for _, m := range markers {
			if m.Group != group || m.Topic != weEvents || m.Until != before[m.Partition] {
				t.Errorf("marker %+v, want until %d", m, before[m.Partition])
			}
			if at, err := time.Parse(time.RFC3339Nano, m.At); err != nil || time.Since(at) > time.Minute {
				t.Errorf("marker time %q", m.At)
			}
		}
	})
	t.Run("a second replay keeps the larger until", func(t *testing.T) {
		code, _, stderr := runCLI(t, append([]string{"replay", group, "--to", "earliest"}, kafkaArgs(s)...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for p, off := range committed(t, s, group) {
			if off != 0 {
				t.Errorf("partition %d at %d, want 0", p, off)
			}
		}
		markers := replayRecords(t, s)
		last := map[int32]replayMarker{}
		for _, m := range markers {
			last[m.Partition] = m
		}
		for p, m := range last {
			if m.Until != before[p] {
				t.Errorf("partition %d: until %d after the second replay, want %d (the first one's)", p, m.Until, before[p])
			}
		}
	})
	t.Run("refuses while the group has live members", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(weEvents), kgo.ClientID("live-consumer"))
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		for {
			cl.PollFetches(pctx) // joins the group
			d, err := s.Admin.DescribeGroups(pctx, group)
			if err == nil && len(d[group].Members) > 0 {
				break
			}
			if pctx.Err() != nil {
				t.Fatal("the consumer did not join")
			}
		}
		offsetsBefore := committed(t, s, group)
		code, _, stderr := runCLI(t, append([]string{"replay", group, "--to", "latest"}, kafkaArgs(s)...)...)
		if code != 1 || !strings.Contains(stderr, "live members") || !strings.Contains(stderr, "live-consumer") {
			t.Errorf("exit %d, want 1 naming the live member:\n%s", code, stderr)
		}
		code, stdout, stderr := runCLI(t, append([]string{"replay", group, "--to", "latest", "--dry-run"}, kafkaArgs(s)...)...)
		if code != 0 || !strings.Contains(stderr, "would refuse") || !strings.Contains(stdout, "dry run") {
			t.Errorf("dry run with live members: exit %d\n%s\n%s", code, stdout, stderr)
		}
		cl.Close()
		// The live consumer may have committed; the refused replay must not have.
		if got := committed(t, s, group); len(got) != len(offsetsBefore) {
			t.Errorf("offsets changed shape: %v -> %v", offsetsBefore, got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"no group", []string{"--to", "earliest"}, 2, "missing GROUP"},
			{"no position", []string{group}, 2, "--to is required"},
			{"bad position", []string{group, "--to", "soon"}, 2, `"soon" is not`},
			{"store-positioned projection", []string{"work-efforts", "--to", "earliest"}, 1, "pyrite projection rebuild work-efforts"},
			{"nothing committed", []string{"webhooks", "--to", "earliest"}, 1, "--topic"},
			{"unknown topic", []string{"webhooks", "--to", "earliest", "--topic", "no.such"}, 1, "no.such does not exist"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, _, stderr := runCLI(t, append([]string{"replay"}, kafkaArgs(s, tt.args...)...)...)
				if code != tt.code || !strings.Contains(stderr, tt.stderr) {
					t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.stderr, stderr)
				}
			})
		}
	})
	// Sagas and process managers start from positions in their store: moving their Kafka
	// offsets would report success while nothing is read again.
	t.Run("store-positioned saga and process manager are refused", func(t *testing.T) {
		for _, g := range []string{"deployment", "github"} {
			if err := s.Admin.CommitAllOffsets(ctx, g, all); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI(t, append([]string{"replay", g, "--to", "earliest"}, kafkaArgs(s)...)...)
			if code != 1 || !strings.Contains(stderr, "positions in its store") || !strings.Contains(stderr, "pyrite dlq redrive "+g) {
				t.Errorf("replay %s: exit %d, want 1 with a refusal naming the store:\n%s\n%s", g, code, stdout, stderr)
			}
			if got := committed(t, s, g); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Errorf("replay %s moved offsets: %v -> %v", g, before, got)
			}
			for _, m := range replayRecords(t, s) {
				if m.Group == g {
					t.Errorf("refused replay wrote a marker: %+v", m)
				}
			}
		}
	})
	t.Run("a group with nothing committed, given its topics", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"replay", "webhooks", "--to", "offset:2", "--topic", weEvents}, kafkaArgs(s)...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		resp, err := s.Admin.FetchOffsets(ctx, "webhooks")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		resp.Each(func(o kadm.OffsetResponse) {
			n++
			if o.At != min(2, before[o.Partition]) {
				t.Errorf("webhooks %s[%d] at %d", o.Topic, o.Partition, o.At)
			}
		})
		if n != len(before) || !strings.Contains(stdout, " - ") {
			t.Errorf("%d partitions committed; output:\n%s", n, stdout)
		}
		for _, m := range replayRecords(t, s) {
			if m.Group == "webhooks" {
				t.Errorf("a group that had read nothing got a replay marker: %+v", m)
			}
		}
	})
}

func TestLag(t *testing.T) {
	s := stacktest.Start(t)
	ctx := t.Context()
	var recs []*kgo.Record
	for i := range 9 {
		recs = append(recs, created(t, s, fmt.Sprintf("we-%d", i), time.Now()))
	}
	s.Produce(t, recs...)
	ends, err := s.Admin.ListEndOffsets(ctx, weEvents)
	if err != nil {
		t.Fatal(err)
	}
	const group = "integration"
	commits := kadm.Offsets{}
	wantLag := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			commits.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset - 1, LeaderEpoch: -1})
			wantLag++
		}
	})
	if err := s.Admin.CommitAllOffsets(ctx, group, commits); err != nil {
		t.Fatal(err)
	}
	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"lag", group, "--output", "json"}, kafkaArgs(s)...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var got []groupLag
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if len(got) != 1 || got[0].Group != group || got[0].Lag != wantLag || got[0].State != "Empty" {
			t.Fatalf("lag = %+v, want total %d", got, wantLag)
		}
		for _, p := range got[0].Partitions {
			end, _ := ends.Lookup(weEvents, p.Partition)
			if p.Topic != weEvents || p.End != end.Offset || p.Committed != end.Offset-1 || p.Lag != 1 {
				t.Errorf("partition %+v, end %d", p, end.Offset)
			}
		}
	})
	t.Run("table", func(t *testing.T) {
		code, stdout, _ := runCLI(t, append([]string{"lag", group}, kafkaArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "TOPIC") || !strings.Contains(stdout, fmt.Sprintf("group %s (Empty, 0 members): lag %d", group, wantLag)) {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("every group", func(t *testing.T) {
		code, stdout, _ := runCLI(t, append([]string{"lag"}, kafkaArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "group "+group) {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("unknown group", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"lag", group, "no-such-group"}, kafkaArgs(s)...)...)
		if code != 1 || !strings.Contains(stdout, "group no-such-group: no such group") || !strings.Contains(stdout, "group "+group+" (") ||
			!strings.Contains(stderr, "1 of 2 groups") {
			t.Errorf("exit %d:\n%s\n%s", code, stdout, stderr)
		}
	})
}
