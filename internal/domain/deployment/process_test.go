package deployment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

var topics = []string{reactortest.WorkEffortEvents, reactortest.DeploymentEvents}

func managerRun(t *testing.T, e *reactortest.Env, timeout time.Duration) func(ctx context.Context) error {
	t.Helper()
	m, err := deployment.New(deployment.Config{StepTimeout: timeout, Environment: "staging", PollInterval: 20 * time.Millisecond,
		SweepInterval: 50 * time.Millisecond, SweepAge: 200 * time.Millisecond}, e.Deps())
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) error { return m.Run(ctx, topics, reactortest.FastRetry(0)) }
}

func completed(e *reactortest.Env, t *testing.T, id string) *kgo.Record {
	r := e.Record(t, reactortest.WorkEffortEvents, deployment.TypeCompleted, id, 0, map[string]any{
		"title": "T", "completedAt": time.Now(), "duration": int64(1), "ticketCount": 0, "assigneeEmail": nil})
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: bus.HeaderCorrelationID, Value: []byte("corr-" + id)})
	return r
}

// result is a worker's answer to a command, on the Deployment events topic.
func result(e *reactortest.Env, t *testing.T, typ string, cmd *bus.Event, extra map[string]any) *kgo.Record {
	d := reactor.Data(cmd.Data)
	we, _ := d.String("workEffortId")
	pid, _ := d.String("processId")
	data := map[string]any{"workEffortId": we, "processId": pid}
	for k, v := range extra {
		data[k] = v
	}
	r := e.Record(t, reactortest.DeploymentEvents, typ, pid, 0, data)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: bus.HeaderCorrelationID, Value: []byte(cmd.CorrelationID)})
	return r
}

// emitted waits until the Deployment raw topic holds n events of typ for process pid.
func emitted(t *testing.T, e *reactortest.Env, typ, pid string, n int) []*bus.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []*bus.Event
		for _, ev := range reactortest.OfType(e.Events(t, reactortest.DeploymentRaw), typ) {
			if ev.AggregateID == pid || pid == "" {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events for %q, want %d", len(got), typ, pid, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(t *testing.T, e *reactortest.Env, pid string) deployment.Process {
	t.Helper()
	p, ok, err := deployment.LoadProcess(t.Context(), e.Store, pid)
	if err != nil || !ok {
		t.Fatalf("process %s: found %v, %v", pid, ok, err)
	}
	return p
}

func waitState(t *testing.T, e *reactortest.Env, pid, want string) deployment.Process {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := state(t, e, pid)
		if p.State == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s is %s, want %s", pid, p.State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func str(ev *bus.Event, key string) string {
	s, _ := reactor.Data(ev.Data).String(key)
	return s
}

func TestDeploymentProcess(t *testing.T) {
	e := migrated(t, reactortest.New(t))
	e.StartReplays(t)
	done := completed(e, t, "we-1")
	e.Produce(t, done)
	pid := deployment.ProcessID(reactortest.Header(done, bus.HeaderID))
	reactortest.Start(t, managerRun(t, e, 10*time.Second))

	run := emitted(t, e, deployment.TypeRunTests, pid, 1)[0]
	t.Run("RunTests starts the process", func(t *testing.T) {
		if str(run, "workEffortId") != "we-1" || str(run, "processId") != pid || run.CorrelationID != "corr-we-1" ||
			run.CausationID != reactortest.Header(done, bus.HeaderID) || string(run.Origin.Key) != pid {
			t.Errorf("RunTests %+v %v", run, run.Data)
		}
		if p := state(t, e, pid); p.State != deployment.StateTesting || p.Step != deployment.StepTest || p.CommandID != run.ID || p.Deadline.IsZero() {
			t.Errorf("state %+v", p)
		}
		v := view(t, e, pid, http.StatusOK)
		if v.State != deployment.StateTesting || v.Deadline == nil || v.WorkEffortID != "we-1" ||
			steps(v) != "test:running build:pending deploy:pending" || v.Steps[0].CommandID != run.ID {
			t.Errorf("GET /v1/deployments/%s: %+v", pid, v)
		}
	})
	passed := result(e, t, deployment.TypeTestsPassed, run, nil)
	e.Produce(t, passed)
	build := emitted(t, e, deployment.TypeRunBuild, pid, 1)[0]
	t.Run("RunBuild after TestsPassed", func(t *testing.T) {
		if build.CausationID != reactortest.Header(passed, bus.HeaderID) || build.CorrelationID != "corr-we-1" {
			t.Errorf("RunBuild %+v", build)
		}
	})
	e.Produce(t, result(e, t, deployment.TypeBuildComplete, build, map[string]any{"artifact": "img:42"}))
	deploy := emitted(t, e, deployment.TypeRunDeploy, pid, 1)[0]
	t.Run("RunDeploy after BuildComplete", func(t *testing.T) {
		if str(deploy, "artifact") != "img:42" || str(deploy, "environment") != "staging" {
			t.Errorf("RunDeploy data %v", deploy.Data)
		}
	})
	e.Produce(t, result(e, t, deployment.TypeDeployed, deploy, map[string]any{"artifact": "img:42", "environment": "staging"}))
	t.Run("finishes on Deployed", func(t *testing.T) {
		p := waitState(t, e, pid, deployment.StateCompleted)
		if !p.Deadline.IsZero() {
			t.Errorf("completed process keeps a deadline %v", p.Deadline)
		}
		v := view(t, e, pid, http.StatusOK)
		if v.State != deployment.StateCompleted || v.Deadline != nil || v.Artifact != "img:42" || v.Environment != "staging" ||
			steps(v) != "test:done build:done deploy:done" {
			t.Errorf("GET /v1/deployments/%s: %+v", pid, v)
		}
		view(t, e, "no-such-process", http.StatusNotFound)
	})

	t.Run("a failed step fails the process and compensates", func(t *testing.T) {
		done := completed(e, t, "we-2")
		e.Produce(t, done)
		pid := deployment.ProcessID(reactortest.Header(done, bus.HeaderID))
		run := emitted(t, e, deployment.TypeRunTests, pid, 1)[0]
		failed := result(e, t, deployment.TypeTestsFailed, run, map[string]any{"reason": "3 tests failed"})
		e.Produce(t, failed)
		comp := emitted(t, e, deployment.TypeProcessFailed, pid, 1)[0]
		if str(comp, "step") != deployment.StepTest || str(comp, "reason") != "3 tests failed" ||
			str(comp, "failedEventType") != deployment.TypeTestsFailed || str(comp, "failedEventId") != reactortest.Header(failed, bus.HeaderID) {
			t.Errorf("ProcessFailed %v", comp.Data)
		}
		waitState(t, e, pid, deployment.StateFailed)
		if v := view(t, e, pid, http.StatusOK); v.Deadline != nil || steps(v) != "test:failed build:pending deploy:pending" || v.Reason == "" {
			t.Errorf("GET /v1/deployments/%s: %+v", pid, v)
		}
		// A late success changes nothing.
		e.Produce(t, result(e, t, deployment.TypeTestsPassed, run, nil))
		e.Stable(t, 300*time.Millisecond, reactortest.DeploymentRaw)
		if n := len(reactortest.OfType(e.Events(t, reactortest.DeploymentRaw), deployment.TypeRunBuild)); n != 1 {
			t.Errorf("%d RunBuild commands, want only we-1's", n)
		}
	})
	t.Run("undecodable records reach the dead-letter topic", func(t *testing.T) {
		e.Produce(t, &kgo.Record{Topic: reactortest.DeploymentEvents, Key: []byte("p-x"), Value: []byte{0, 0, 0, 0, 99, 1}})
		dlq := e.DLQ(t, deployment.Group, 1)
		if reactortest.Header(dlq[0], bus.HeaderDLQReason) != bus.ReasonUnknownSchema || string(dlq[0].Key) != "p-x" {
			t.Errorf("dead letter %s: %s", dlq[0].Key, reactortest.Header(dlq[0], bus.HeaderDLQReason))
		}
	})
}

// TestDeploymentSurvivesRestarts stops the manager in the middle of a process twice: a
// result that arrives while it is down is handled after the restart, and a deadline that
// passes while it is down fires after the restart.
func TestDeploymentSurvivesRestarts(t *testing.T) {
	backends := []struct {
		name string
		env  func(t *testing.T) *reactortest.Env
	}{
		{"sqlite", func(t *testing.T) *reactortest.Env { return migrated(t, reactortest.New(t)) }},
		{"postgres", func(t *testing.T) *reactortest.Env {
			url := stacktest.PostgresURL(t)
			return migrated(t, reactortest.WithStack(t, stacktest.Start(t), url))
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { survivesRestarts(t, b.env(t)) })
	}
}

func survivesRestarts(t *testing.T, e *reactortest.Env) {
	// The step timeout must outlast seeing RunBuild and stopping the manager, which on a
	// loaded machine has taken longer than 700 ms; the test sleeps past it once.
	const timeout = 3 * time.Second
	done := completed(e, t, "we-3")
	e.Produce(t, done)
	pid := deployment.ProcessID(reactortest.Header(done, bus.HeaderID))

	stop := reactortest.Start(t, managerRun(t, e, timeout))
	run := emitted(t, e, deployment.TypeRunTests, pid, 1)[0]
	stop()
	e.Produce(t, result(e, t, deployment.TypeTestsPassed, run, nil))
	stop = reactortest.Start(t, managerRun(t, e, timeout))
	emitted(t, e, deployment.TypeRunBuild, pid, 1)
	stop()
	p := state(t, e, pid)
	if p.State != deployment.StateBuilding {
		t.Fatalf("state %s after RunBuild", p.State)
	}
	// Down past the deadline: nothing fires while nothing runs.
	time.Sleep(time.Until(p.Deadline) + 200*time.Millisecond)
	if n := len(reactortest.OfType(e.Events(t, reactortest.DeploymentRaw), deployment.TypeStepTimedOut)); n != 0 {
		t.Fatalf("%d timeouts while the manager was down", n)
	}
	restarted := time.Now()
	reactortest.Start(t, managerRun(t, e, timeout))
	to := emitted(t, e, deployment.TypeStepTimedOut, pid, 1)[0]
	comp := emitted(t, e, deployment.TypeProcessFailed, pid, 1)[0]
	d := reactor.Data(to.Data)
	deadline, _ := d.Time("deadline")
	at, _ := d.Time("timedOutAt")
	if str(to, "step") != deployment.StepBuild || !deadline.Equal(p.Deadline) || at.Before(restarted.Truncate(time.Millisecond)) ||
		str(to, "commandId") != p.CommandID || to.CausationID != p.CommandID || to.CorrelationID != "corr-we-3" {
		t.Errorf("StepTimedOut %+v %v (deadline %v, restarted %v)", to, to.Data, p.Deadline, restarted)
	}
	if str(comp, "failedEventType") != deployment.TypeStepTimedOut || str(comp, "failedEventId") != to.ID || str(comp, "step") != deployment.StepBuild {
		t.Errorf("ProcessFailed %v", comp.Data)
	}
	waitState(t, e, pid, deployment.StateTimedOut)
	e.Stable(t, 200*time.Millisecond, reactortest.DeploymentRaw)
	if n := len(reactortest.OfType(e.Events(t, reactortest.DeploymentRaw), deployment.TypeStepTimedOut)); n != 1 {
		t.Errorf("%d timeouts, want 1", n)
	}
}

// TestDeploymentNoDuplicateCommands stops the manager during a burst of completions and,
// at the end, makes every event come again (positions and offsets forgotten): each process
// gets exactly one RunTests id and no command is emitted twice.
func TestDeploymentNoDuplicateCommands(t *testing.T) {
	e := migrated(t, reactortest.New(t))
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, completed(e, t, fmt.Sprintf("we-%d", i)))
	}
	e.Produce(t, recs...)
	for _, at := range []int{5, 15, 25} {
		stop := reactortest.Start(t, managerRun(t, e, time.Minute))
		emitted(t, e, deployment.TypeRunTests, "", at)
		stop()
	}
	stop := reactortest.Start(t, managerRun(t, e, time.Minute))
	emitted(t, e, deployment.TypeRunTests, "", 30)
	stop()
	before := e.Count(t, reactortest.DeploymentRaw)

	e.ForgetPositions(t, deployment.Group)
	e.Rewind(t, deployment.Group, reactortest.WorkEffortEvents)
	stop = reactortest.Start(t, managerRun(t, e, time.Minute))
	e.WaitCommitted(t, deployment.Group, reactortest.WorkEffortEvents)
	e.Stable(t, 300*time.Millisecond, reactortest.DeploymentRaw)
	stop()
	if after := e.Count(t, reactortest.DeploymentRaw); after != before {
		t.Errorf("redelivery wrote %d more records", after-before)
	}
	ids := map[string]map[string]bool{}
	for _, ev := range reactortest.OfType(e.Events(t, reactortest.DeploymentRaw), deployment.TypeRunTests) {
		we := str(ev, "workEffortId")
		if ids[we] == nil {
			ids[we] = map[string]bool{}
		}
		ids[we][ev.ID] = true
	}
	for i := range 30 {
		if n := len(ids[fmt.Sprintf("we-%d", i)]); n != 1 {
			t.Errorf("we-%d: %d RunTests ids, want 1", i, n)
		}
	}
}

// view answers GET /v1/deployments/{id} from the process manager's store, wanting status.
func view(t *testing.T, e *reactortest.Env, id string, status int) deployment.View {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(deployment.QueryPath, deployment.Query(projector.Reads{Store: e.Store}))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/deployments/"+id, nil))
	if rec.Code != status {
		t.Fatalf("GET /v1/deployments/%s: %d, want %d: %s", id, rec.Code, status, rec.Body)
	}
	var v deployment.View
	if status == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// steps reads a view's steps as "name:status ...".
func steps(v deployment.View) string {
	parts := make([]string, len(v.Steps))
	for i, s := range v.Steps {
		parts[i] = s.Name + ":" + s.Status
	}
	return strings.Join(parts, " ")
}

// migrated creates the process manager's tables in e's store, as the projector does from the
// module's read model, for tests that read or write them before a manager runs.
func migrated(t *testing.T, e *reactortest.Env) *reactortest.Env {
	t.Helper()
	if err := deployment.Migrate(t.Context(), e.Store); err != nil {
		t.Fatal(err)
	}
	return e
}
