// Package deployment is the Deployment aggregate: its module (Module) and the seed's DeploymentProcessManager, made durable: one consumer group
// ("deployment") on the WorkEffort and Deployment events.
//
// A WorkEffort:Completed starts a process (its id derived from the event's ce_id) with the
// steps test, build and deploy. The manager emits Deployment:RunTests, then RunBuild on
// TestsPassed, then RunDeploy (with the built artifact and the configured environment) on
// BuildComplete, and finishes on Deployed. A TestsFailed, BuildFailed or DeployFailed fails
// the process and emits the compensation event Deployment:ProcessFailed. Every step has a
// durable deadline: a step not answered in time emits Deployment:StepTimedOut and
// ProcessFailed, also when the program was down when the deadline passed (it fires on the
// first poll after the restart). Results that come late (after a failure or timeout), twice,
// or for an unknown process are ignored.
//
// Guarantees. Process state is stored in the same database transaction as the group's
// positions and the commands it emits (reactor.Stateful and its outbox); a deadline fires in
// its own transaction that compares and sets the process's version, so a result and a
// timeout that race are decided once, and so are two instances' deadline polls. Commands and
// events are written to pyrite.deployment.raw keyed by the process id, with ce_ids derived
// from their cause and the correlation id of the work effort's completion carried along.
//
// With reactor.Deps.Appender set (the projector's --eventstore-url), they are appended
// through the event store: commands from the outbox, and a deadline's StepTimedOut and
// ProcessFailed in one append expecting the process's stream at the version the manager has
// handled (stored as stream_version), so a timeout is never decided on a stream that moved
// on; see FireDue. Without it they are produced as raw records, numbered by position.
package deployment

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Group is the process manager's consumer group (topology group) and the store name of its
// state.
const Group = "deployment"

// Event types.
const (
	TypeCompleted     = "WorkEffort:Completed"
	TypeRunTests      = "Deployment:RunTests"
	TypeRunBuild      = "Deployment:RunBuild"
	TypeRunDeploy     = "Deployment:RunDeploy"
	TypeTestsPassed   = "Deployment:TestsPassed"
	TypeTestsFailed   = "Deployment:TestsFailed"
	TypeBuildComplete = "Deployment:BuildComplete"
	TypeBuildFailed   = "Deployment:BuildFailed"
	TypeDeployed      = "Deployment:Deployed"
	TypeDeployFailed  = "Deployment:DeployFailed"
	TypeStepTimedOut  = "Deployment:StepTimedOut"
	TypeProcessFailed = "Deployment:ProcessFailed"
)

// Process states (Process.State).
const (
	StateTesting   = "testing"
	StateBuilding  = "building"
	StateDeploying = "deploying"
	StateCompleted = "completed"
	StateFailed    = "failed"
	StateTimedOut  = "timed-out"
)

// Steps.
const (
	StepTest   = "test"
	StepBuild  = "build"
	StepDeploy = "deploy"
)

// Defaults.
const (
	DefaultStepTimeout   = 30 * time.Minute
	DefaultEnvironment   = "production"
	DefaultPollInterval  = time.Second
	defaultSweepInterval = 10 * time.Second
	defaultSweepAge      = 30 * time.Second
)

// Config configures the process manager; zero values take the defaults.
type Config struct {
	// StepTimeout is how long a step may take before it times out (default 30m).
	StepTimeout time.Duration
	// Environment is what RunDeploy deploys to (default "production").
	Environment string
	// PollInterval is how often due deadlines are looked for (default 1s): a deadline fires
	// at most this late while the program runs.
	PollInterval time.Duration
	// SweepInterval and SweepAge tune the outbox sweeper (reactor.Outbox.Sweep); defaults
	// 10s and 30s.
	SweepInterval time.Duration
	SweepAge      time.Duration
}

// Validate reports every problem, joined.
func (c Config) Validate() error {
	if c.StepTimeout < 0 || c.PollInterval < 0 || c.SweepInterval < 0 || c.SweepAge < 0 {
		return errors.New("deployment: durations must not be negative")
	}
	return nil
}

// Manager is the deployment process manager. Make it with New and call Run once.
type Manager struct {
	cfg     Config
	d       reactor.Deps
	outbox  *reactor.Outbox
	handler *reactor.Stateful
	log     *slog.Logger
	now     func() time.Time
}

// New returns the manager on d (Store, Topology, Decoder, Emitter and Producer required).
func New(cfg Config, d reactor.Deps) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.StepTimeout = cmp.Or(cfg.StepTimeout, DefaultStepTimeout)
	cfg.Environment = cmp.Or(cfg.Environment, DefaultEnvironment)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, DefaultPollInterval)
	cfg.SweepInterval = cmp.Or(cfg.SweepInterval, defaultSweepInterval)
	cfg.SweepAge = cmp.Or(cfg.SweepAge, defaultSweepAge)
	m := &Manager{cfg: cfg, d: d, log: d.Log(), now: time.Now}
	m.outbox = reactor.NewOutbox(d.Store, Group, d.Producer, d.Appender, d.Metrics, m.log)
	m.handler = reactor.NewStateful(Group, Group, d.Store, m.outbox, d.Replays, m.Handle)
	// The types Handle decides about: the runner moves past the others undecoded.
	if err := m.handler.Only(TypeCompleted, aggregatePrefix+"*"); err != nil {
		return nil, err
	}
	return m, nil
}

// Run creates the state's tables if they are missing (Migrate), then consumes topics (the
// WorkEffort and Deployment events topics) as the "deployment" group, fires due deadlines and
// sweeps the outbox, until ctx ends.
func (m *Manager) Run(ctx context.Context, topics []string, retry reactor.Retry) error {
	if err := Migrate(ctx, m.d.Store); err != nil {
		return err
	}
	r, err := m.d.BatchRunner(Group, topics, m.handler, retry)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx) })
	g.Go(func() error { m.outbox.Sweep(gctx, m.cfg.SweepInterval, m.cfg.SweepAge); return nil })
	g.Go(func() error { m.deadlines(gctx); return nil })
	return g.Wait()
}

// expected maps a result type to the state it answers, the next step (empty: the process
// ends) and whether it is a failure.
var expected = map[string]struct {
	state   string
	failure bool
}{
	TypeTestsPassed: {StateTesting, false}, TypeTestsFailed: {StateTesting, true},
	TypeBuildComplete: {StateBuilding, false}, TypeBuildFailed: {StateBuilding, true},
	TypeDeployed: {StateDeploying, false}, TypeDeployFailed: {StateDeploying, true},
}

// ProcessID is the id of the process a WorkEffort:Completed event (by ce_id) starts.
func ProcessID(completedEventID string) string {
	return reactor.EventID(completedEventID, "deployment/process")
}

// Handle decides about one event (see reactor.Handle).
func (m *Manager) Handle(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	switch {
	case ev.Type == TypeCompleted:
		return m.start(ctx, ev)
	case ev.Type == TypeStepTimedOut:
		return m.timedOut(ctx, ev)
	case strings.HasPrefix(ev.Type, aggregatePrefix):
		if _, ok := expected[ev.Type]; ok {
			return m.result(ctx, ev)
		}
		return m.seen(ctx, ev)
	}
	return nil, nil
}

// aggregatePrefix starts the types of the process's own stream (keyed by process id).
const aggregatePrefix = "Deployment:"

// observe records in p that the manager handled ev, when ev is an event of p's stream
// with a version above what p knew; it reports whether p changed.
func observe(p *Process, ev *bus.Event) bool {
	if ev.AggregateID != p.ProcessID || ev.AggregateVersion <= p.StreamVersion {
		return false
	}
	p.StreamVersion = ev.AggregateVersion
	return true
}

// seen records the stream version of an event of a process's stream that decides nothing
// (the manager's own commands, ProcessFailed).
func (m *Manager) seen(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	p, found, err := LoadProcess(ctx, m.d.Store, ev.AggregateID)
	if err != nil || !found || !observe(&p, ev) {
		return nil, err
	}
	return m.write(ev, &p), nil
}

// timedOut applies a StepTimedOut of the step in progress, as FireDue decided it: when
// timeouts are appended through the event store, the process's stream, not the store, is
// where a timeout is decided, so one appended but not stored (a crash, a lost answer)
// still ends the process, before any later result of the stream is looked at.
func (m *Manager) timedOut(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	p, found, err := LoadProcess(ctx, m.d.Store, ev.AggregateID)
	if err != nil || !found {
		return nil, err
	}
	cmd, _ := reactor.Data(ev.Data).String("commandId")
	if waiting(p.State) && cmd == p.CommandID {
		p = timedOutState(p)
		observe(&p, ev)
		return m.write(ev, &p), nil
	}
	if observe(&p, ev) {
		return m.write(ev, &p), nil
	}
	return nil, nil
}

// waiting reports whether a process in state waits for a step's result.
func waiting(state string) bool {
	return state == StateTesting || state == StateBuilding || state == StateDeploying
}

// timedOutState is p after its step timed out.
func timedOutState(p Process) Process {
	p.State, p.Reason, p.Deadline = StateTimedOut, timeoutReason(p), time.Time{}
	return p
}

func timeoutReason(p Process) string {
	return fmt.Sprintf("step %s timed out at %s", p.Step, p.Deadline.Format(time.RFC3339))
}

func source(ev *bus.Event) store.TopicPartition {
	return store.TopicPartition{Topic: ev.Origin.Topic, Partition: ev.Origin.Partition}
}

// command encodes a Run* command of process p, caused by cause.
func (m *Manager) command(ctx context.Context, cause reactor.Cause, p Process, typ string, extra map[string]any) (*kgo.Record, error) {
	data := map[string]any{"workEffortId": p.WorkEffortID, "processId": p.ProcessID}
	for k, v := range extra {
		data[k] = v
	}
	return m.d.Emitter.Record(ctx, cause, reactor.Emit{Type: typ, AggregateID: p.ProcessID, Data: data, Step: "deployment/" + typ})
}

func (m *Manager) start(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	id := ProcessID(ev.ID)
	if _, found, err := LoadProcess(ctx, m.d.Store, id); err != nil || found {
		return nil, err
	}
	cause := reactor.CauseOf(ev)
	now := m.now()
	p := Process{ProcessID: id, WorkEffortID: ev.AggregateID, State: StateTesting, Step: StepTest,
		CommandType: TypeRunTests, Deadline: now.Add(m.cfg.StepTimeout), CorrelationID: cause.CorrelationID, StartedAt: now}
	rec, err := m.command(ctx, cause, p, TypeRunTests, nil)
	if err != nil {
		return nil, err
	}
	p.CommandID = reactor.HeaderValue(rec.Headers, bus.HeaderID)
	m.d.Metrics.Count(Group, "process_start", "ok", 1)
	return m.write(ev, &p, rec), nil
}

func (m *Manager) write(ev *bus.Event, p *Process, recs ...*kgo.Record) reactor.Apply {
	return func(tx *store.Tx) error {
		if err := PutProcess(tx, p); err != nil {
			return err
		}
		return m.outbox.Add(tx, source(ev), recs...)
	}
}

func (m *Manager) result(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	d := reactor.Data(ev.Data)
	id, _ := d.String("processId")
	if id == "" {
		id = ev.AggregateID
	}
	p, found, err := LoadProcess(ctx, m.d.Store, id)
	if err != nil {
		return nil, err
	}
	want := expected[ev.Type]
	if !found || p.State != want.state {
		m.log.Info("deployment: ignoring a result no step waits for", "type", ev.Type, "process", id, "found", found, "state", p.State)
		m.d.Metrics.Count(Group, "result", "ignored", 1)
		if found && observe(&p, ev) {
			return m.write(ev, &p), nil
		}
		return nil, nil
	}
	observe(&p, ev)
	cause := reactor.CauseOf(ev)
	if want.failure {
		reason, _ := d.String("reason")
		p.State, p.Reason, p.Deadline = StateFailed, reason, time.Time{}
		rec, err := m.failed(ctx, cause, p, reason, ev.Type, ev.ID)
		if err != nil {
			return nil, err
		}
		m.d.Metrics.Count(Group, "process_failed", "ok", 1)
		return m.write(ev, &p, rec), nil
	}
	var (
		typ   string
		extra map[string]any
	)
	switch ev.Type {
	case TypeTestsPassed:
		p.State, p.Step, typ = StateBuilding, StepBuild, TypeRunBuild
	case TypeBuildComplete:
		p.Artifact, _ = d.String("artifact")
		p.Environment = m.cfg.Environment
		p.State, p.Step, typ = StateDeploying, StepDeploy, TypeRunDeploy
		extra = map[string]any{"artifact": p.Artifact, "environment": p.Environment}
	case TypeDeployed:
		p.State, p.Deadline = StateCompleted, time.Time{}
		m.d.Metrics.Count(Group, "process_completed", "ok", 1)
		return m.write(ev, &p), nil
	}
	rec, err := m.command(ctx, cause, p, typ, extra)
	if err != nil {
		return nil, err
	}
	p.CommandID, p.CommandType, p.Deadline = reactor.HeaderValue(rec.Headers, bus.HeaderID), typ, m.now().Add(m.cfg.StepTimeout)
	return m.write(ev, &p, rec), nil
}

// failed encodes the compensation event of p failing at its step.
func (m *Manager) failed(ctx context.Context, cause reactor.Cause, p Process, reason, failedType, failedID string) (*kgo.Record, error) {
	var artifact any
	if p.Artifact != "" {
		artifact = p.Artifact
	}
	return m.d.Emitter.Record(ctx, cause, reactor.Emit{Type: TypeProcessFailed, AggregateID: p.ProcessID, Step: "deployment/process-failed",
		Data: map[string]any{"workEffortId": p.WorkEffortID, "processId": p.ProcessID, "step": p.Step, "reason": reason,
			"failedEventType": failedType, "failedEventId": failedID, "artifact": artifact, "failedAt": m.now()}})
}

// deadlines fires due deadlines every PollInterval until ctx ends.
func (m *Manager) deadlines(ctx context.Context) {
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := m.FireDue(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("deployment: firing deadlines failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// FireDue times out every process whose step deadline has passed and returns how many it
// timed out.
//
// Without an Appender, in one transaction per process, if its version is still the one
// read, it is marked timed out and StepTimedOut and ProcessFailed are queued in the outbox;
// then they are written.
//
// With an Appender, StepTimedOut and ProcessFailed are appended first, in one append that
// expects the process's stream at the version the manager has handled (StreamVersion;
// without expectation when unknown), then the timed-out state is stored. When the stream
// moved on (a result, or any event the manager has not handled yet) or the state was
// written meanwhile, the process is read again and decided again, up to 3 times in all;
// then FireDue returns ErrStreamMoved (transient) and the next poll tries again. The
// events' ce_ids derive from the unanswered command, so an append repeated after a crash
// or a lost answer is a duplicate in the store, and the handler applies a StepTimedOut it
// reads from the stream that was never stored (Handle).
func (m *Manager) FireDue(ctx context.Context) (int, error) {
	now := m.now()
	due, err := DueProcesses(ctx, m.d.Store, now, 100)
	if err != nil {
		return 0, err
	}
	fired := 0
	for _, p := range due {
		var ok bool
		if m.d.Appender != nil {
			ok, err = m.appendTimeout(ctx, p, now)
		} else {
			ok, err = m.queueTimeout(ctx, p, now)
		}
		if err != nil {
			return fired, err
		}
		if ok {
			fired++
			m.d.Metrics.Count(Group, "step_timeout", "ok", 1)
			m.log.Warn("deployment: step timed out", "process", p.ProcessID, "step", p.Step, "deadline", p.Deadline)
		}
	}
	if fired > 0 && m.d.Appender == nil {
		return fired, m.outbox.Flush(ctx, store.OutboxFilter{Source: &store.TopicPartition{Partition: -1}})
	}
	return fired, nil
}

// timeoutEvents encodes StepTimedOut and ProcessFailed of p timing out at now.
func (m *Manager) timeoutEvents(ctx context.Context, p Process, now time.Time) (timedOut, failed *kgo.Record, err error) {
	// The cause of a timeout is the command nobody answered; its ids derive from it.
	cause := reactor.Cause{ID: p.CommandID, CorrelationID: p.CorrelationID}
	if cause.ID == "" {
		cause.ID = p.ProcessID + "/" + p.Step
	}
	timedOut, err = m.d.Emitter.Record(ctx, cause, reactor.Emit{Type: TypeStepTimedOut, AggregateID: p.ProcessID,
		Step: "deployment/step-timed-out", Data: map[string]any{"workEffortId": p.WorkEffortID, "processId": p.ProcessID,
			"step": p.Step, "commandId": p.CommandID, "deadline": p.Deadline, "timedOutAt": now}})
	if err != nil {
		return nil, nil, err
	}
	id := reactor.HeaderValue(timedOut.Headers, bus.HeaderID)
	failed, err = m.failed(ctx, reactor.Cause{ID: id, CorrelationID: p.CorrelationID}, timedOutState(p), timeoutReason(p), TypeStepTimedOut, id)
	return timedOut, failed, err
}

// queueTimeout times p out through the outbox: state and events in one transaction.
func (m *Manager) queueTimeout(ctx context.Context, p Process, now time.Time) (bool, error) {
	timedOut, failed, err := m.timeoutEvents(ctx, p, now)
	if err != nil {
		return false, err
	}
	next := timedOutState(p)
	err = m.d.Store.Update(ctx, Group, func(tx *store.Tx) error {
		if err := PutProcess(tx, &next); err != nil {
			return err
		}
		return m.outbox.Add(tx, store.TopicPartition{Partition: -1}, timedOut, failed)
	})
	if errors.Is(err, ErrConflict) {
		return false, nil // a result (or another instance) got there first
	}
	return err == nil, err
}

// timeoutAttempts is how many times appendTimeout decides one process before it gives up
// until the next poll.
const timeoutAttempts = 3

// ErrStreamMoved means a timeout was not appended because the process's stream kept
// moving past what the manager had handled; transient: the next poll decides again.
var ErrStreamMoved = errors.New("deployment: process stream moved on")

// appendTimeout times p out through the event store (see FireDue).
func (m *Manager) appendTimeout(ctx context.Context, p Process, now time.Time) (bool, error) {
	appended := false
	for attempt := 1; ; attempt++ {
		timedOut, failed, err := m.timeoutEvents(ctx, p, now)
		if err != nil {
			return false, err
		}
		evs := []eventstore.Pending{
			{Record: timedOut, ID: reactor.HeaderValue(timedOut.Headers, bus.HeaderID), Type: TypeStepTimedOut, Expected: p.StreamVersion},
			{Record: failed, ID: reactor.HeaderValue(failed.Headers, bus.HeaderID), Type: TypeProcessFailed, Expected: -1},
		}
		if p.StreamVersion >= 0 {
			evs[1].Expected = p.StreamVersion + 1
		}
		res, err := m.d.Appender.Append(ctx, evs)
		switch {
		case err == nil:
			appended = true
			next := timedOutState(p)
			if p.StreamVersion >= 0 && len(res) == len(evs) {
				next.StreamVersion = max(p.StreamVersion, res[len(res)-1].Version)
			}
			err = m.d.Store.Update(ctx, Group, func(tx *store.Tx) error { return PutProcess(tx, &next) })
			if err == nil {
				return true, nil
			}
			if !errors.Is(err, ErrConflict) {
				return false, err
			}
			// The handler wrote the process meanwhile (it may have applied this very
			// timeout from the stream): decide again; the append is then a duplicate.
		case !errors.Is(err, eventstore.ErrVersionConflict):
			return false, fmt.Errorf("deployment: append timeout of process %s: %w", p.ProcessID, err)
		}
		if attempt >= timeoutAttempts {
			return false, fmt.Errorf("%w: process %s past version %d, %d attempts", ErrStreamMoved, p.ProcessID, p.StreamVersion, attempt)
		}
		// Give the handler a moment to handle what it has not seen yet, then read again.
		t := time.NewTimer(time.Duration(attempt) * min(m.cfg.PollInterval, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
		cur, found, err := LoadProcess(ctx, m.d.Store, p.ProcessID)
		if err != nil {
			return false, err
		}
		if found && cur.State == StateTimedOut && appended {
			return true, nil // the handler applied this timeout from the stream
		}
		if !found || !waiting(cur.State) || cur.Deadline.IsZero() || cur.Deadline.After(now) {
			return false, nil // decided by a result meanwhile
		}
		p = cur
	}
}
