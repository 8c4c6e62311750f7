package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/pyrite-dev/pyrite/internal/server"
)

// A stage of pyrite dev: it serves its health and API on ln until ctx ends and closes ln
// when it returns.
type stage func(ctx context.Context, ln net.Listener) error

// supervisor restarts the stages of pyrite dev that fail once the pipeline has been ready,
// as a process supervisor restarts a service: in one process, one stage's error (an end of
// transaction the broker refused, a database error) would otherwise stop every stage and
// the broker with them. A stage that fails before the pipeline was ready still stops
// pyrite dev: that is a configuration the user has to fix, and restarting would hide it.
type supervisor struct {
	log   *slog.Logger
	ready atomic.Bool // set once every stage answered /readyz

	// minBackoff doubles up to maxBackoff while a stage keeps failing; a stage that ran
	// for stable before failing starts again after minBackoff.
	minBackoff, maxBackoff, stable time.Duration
}

func newSupervisor(log *slog.Logger) *supervisor {
	return &supervisor{log: log, minBackoff: time.Second, maxBackoff: 30 * time.Second, stable: time.Minute}
}

// run runs st on ln until ctx ends. After a failure once s is ready, it logs the error,
// waits, listens again on ln's address and starts st afresh. It returns nil when ctx
// ends, or the error of a failure before s was ready.
func (s *supervisor) run(ctx context.Context, name string, ln net.Listener, st stage) error {
	addr := ln.Addr().String()
	wait := s.minBackoff
	for {
		began := time.Now()
		err := st(ctx, ln)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil { // a stage only returns early on a failure; treat it as one
			err = errStoppedEarly
		}
		if !s.ready.Load() {
			return named(name, err)
		}
		if time.Since(began) >= s.stable {
			wait = s.minBackoff
		}
		s.log.Error("stage failed; starting it again", "stage", name, "err", err, "in", wait.String())
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(2*wait, s.maxBackoff)
			if ln, err = server.Listen(addr, name+"-addr"); err == nil {
				break
			}
			s.log.Error("stage failed; its address is not free yet", "stage", name, "err", err, "in", wait.String())
		}
	}
}

var errStoppedEarly = errors.New("stopped without an error before pyrite dev stopped")
