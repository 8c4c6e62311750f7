package main

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/schemas"
)

// TestEvents: pyrite events pages through the projector's readAll; --limit stops early and
// the printed cursor goes on from there without skipping or repeating.
func TestEvents(t *testing.T) {
	s := stacktest.Start(t)
	local, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := bus.NewCodecDecoder(codec.Dial(s.RegistryURL), s.Topology, local)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(projector.NewReadAll(s.Brokers, []string{weEvents, "pyrite.deployment.events"}, dec))
	defer srv.Close()
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		s.Produce(t, created(t, s, fmt.Sprintf("we-%d", i), at.Add(time.Duration(i)*time.Second)))
	}
	ids := func(out string) []string {
		var ids []string
		for _, l := range jsonLines(t, out) {
			ids = append(ids, fmt.Sprint(l["aggregateId"]))
		}
		return ids
	}
	code, stdout, stderr := runCLI(t, "events", "--projector", srv.URL, "--limit", "3", "--types", "WorkEffort:*")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	first := ids(stdout)
	cursor, ok := strings.CutPrefix(strings.TrimSpace(stderr), "nextCursor ")
	if len(first) != 3 || !ok || cursor == "" {
		t.Fatalf("first run: %v, stderr %q", first, stderr)
	}
	code, stdout, stderr = runCLI(t, "events", "--projector", srv.URL, "--from", cursor)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	all := append(first, ids(stdout)...)
	slices.Sort(all)
	if want := []string{"we-0", "we-1", "we-2", "we-3", "we-4"}; !slices.Equal(all, want) {
		t.Errorf("events across the two runs %v, want %v", all, want)
	}
	if code, _, stderr := runCLI(t, "events", "--projector", srv.URL, "--from", "garbage!"); code != 1 || !strings.Contains(stderr, "400") {
		t.Errorf("bad cursor: exit %d: %s", code, stderr)
	}
}
