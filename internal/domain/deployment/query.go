package deployment

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pyrite-dev/pyrite/internal/projector"
)

// QueryPath is the deployment read model's route: the process manager's state of one
// deployment process, by process id (the Deployment aggregate id).
const QueryPath = "GET /v1/deployments/{id}"

// View is the body of GET /v1/deployments/{id}.
type View struct {
	ID           string `json:"id"`
	WorkEffortID string `json:"workEffortId"`
	// State is testing, building, deploying, completed, failed or timed-out.
	State string `json:"state"`
	// Steps are test, build and deploy in order, each pending, running, done, failed or
	// timed-out.
	Steps []StepView `json:"steps"`
	// Deadline is when the running step times out; null when no step runs.
	Deadline      *time.Time `json:"deadline"`
	Artifact      string     `json:"artifact,omitempty"`
	Environment   string     `json:"environment,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	CorrelationID string     `json:"correlationId,omitempty"`
	StartedAt     time.Time  `json:"startedAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	// Version counts the process manager's writes of the process.
	Version int64 `json:"version"`
}

// StepView is one step of a View; CommandID is the ce_id of the command that started it.
type StepView struct {
	Name      string `json:"name"`
	Status    string `json:"status"`
	CommandID string `json:"commandId,omitempty"`
}

// ViewOf returns the read model of a process as the process manager stored it.
func ViewOf(p Process) View {
	v := View{ID: p.ProcessID, WorkEffortID: p.WorkEffortID, State: p.State, Artifact: p.Artifact,
		Environment: p.Environment, Reason: p.Reason, CorrelationID: p.CorrelationID,
		StartedAt: p.StartedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(), Version: p.Version}
	if !p.Deadline.IsZero() && (p.State == StateTesting || p.State == StateBuilding || p.State == StateDeploying) {
		d := p.Deadline.UTC()
		v.Deadline = &d
	}
	current := -1
	steps := []string{StepTest, StepBuild, StepDeploy}
	for i, s := range steps {
		if s == p.Step {
			current = i
		}
	}
	for i, s := range steps {
		st := StepView{Name: s, Status: "pending"}
		switch {
		case p.State == StateCompleted || i < current:
			st.Status = "done"
		case i == current && p.State == StateFailed:
			st.Status = "failed"
		case i == current && p.State == StateTimedOut:
			st.Status = "timed-out"
		case i == current:
			st.Status = "running"
		}
		if i == current {
			st.CommandID = p.CommandID
		}
		v.Steps = append(v.Steps, st)
	}
	return v
}

// Query serves QueryPath from the projector's store: 200 with the View, 404 for an unknown
// process.
func Query(rd projector.Reads) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		p, found, err := LoadProcess(r.Context(), rd.Store, id)
		switch {
		case err != nil:
			problem(w, http.StatusInternalServerError, "store-error", "Store error", err.Error())
		case !found:
			problem(w, http.StatusNotFound, "not-found", "Not found", fmt.Sprintf("no deployment process %q", id))
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(ViewOf(p))
		}
	})
}

func problem(w http.ResponseWriter, status int, slug, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:pyrite:problem:" + slug, "title": title, "status": status, "detail": detail})
}
