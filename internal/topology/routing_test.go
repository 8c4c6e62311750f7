package topology

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pyrite-dev/pyrite/schemas"
)

func devTopology(t testing.TB) *Topology {
	t.Helper()
	top, err := New(Dev, seed()...)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func TestAggregateNaming(t *testing.T) {
	tests := []struct {
		name, segment, namespace, raw, events, subject string
	}{
		{name: "WorkEffort", segment: "work-effort", namespace: "pyrite.workeffort",
			raw: "pyrite.work-effort.raw", events: "pyrite.work-effort.events", subject: "pyrite.workeffort.X"},
		{name: "Deployment", segment: "deployment", namespace: "pyrite.deployment",
			raw: "pyrite.deployment.raw", events: "pyrite.deployment.events", subject: "pyrite.deployment.X"},
		{name: "GitHubIssue2", segment: "git-hub-issue2", namespace: "pyrite.githubissue2",
			raw: "pyrite.git-hub-issue2.raw", events: "pyrite.git-hub-issue2.events", subject: "pyrite.githubissue2.X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Aggregate{Name: tt.name}
			got := []string{a.Segment(), a.Namespace(), a.RawTopic(), a.EventsTopic(), a.Subject("X")}
			want := []string{tt.segment, tt.namespace, tt.raw, tt.events, tt.subject}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("got %q, want %q", got[i], want[i])
				}
			}
		})
	}
}

func TestRawTopic(t *testing.T) {
	top := devTopology(t)
	tests := []struct {
		name, eventType, want string
		wantErr               error
	}{
		{name: "domain", eventType: "WorkEffort:ProgressUpdated", want: "pyrite.work-effort.raw"},
		{name: "saga event on work effort", eventType: "WorkEffort:GitHubIssueCreated", want: "pyrite.work-effort.raw"},
		{name: "deployment command", eventType: "Deployment:RunTests", want: "pyrite.deployment.raw"},
		{name: "system", eventType: "System:FileChanged", want: "pyrite.system"},
		{name: "integration", eventType: "work-effort.completed.v1", want: "pyrite.integration"},
		{name: "integration v12", eventType: "work-effort.completed.v12", want: "pyrite.integration"},
		{name: "unknown aggregate", eventType: "Invoice:Paid", wantErr: ErrUnknownAggregate},
		{name: "empty", eventType: "", wantErr: ErrUnroutable},
		{name: "no name", eventType: "WorkEffort:", wantErr: ErrUnroutable},
		{name: "lowercase name", eventType: "WorkEffort:started", wantErr: ErrUnroutable},
		{name: "two colons", eventType: "WorkEffort:Started:Again", wantErr: ErrUnroutable},
		{name: "seed's flat name", eventType: "WorkEffortStarted", wantErr: ErrUnroutable},
		{name: "wildcard pattern is not a type", eventType: "WorkEffort:*", wantErr: ErrUnroutable},
		{name: "integration without version", eventType: "work-effort.completed", wantErr: ErrUnroutable},
		{name: "integration v0", eventType: "work-effort.completed.v0", wantErr: ErrUnroutable},
		{name: "integration leading zero", eventType: "work-effort.completed.v01", wantErr: ErrUnroutable},
		{name: "integration double hyphen", eventType: "work--effort.completed.v1", wantErr: ErrUnroutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := top.RawTopic(tt.eventType)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RawTopic(%q) err = %v, want %v", tt.eventType, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RawTopic(%q) = %q, %v; want %q", tt.eventType, got, err, tt.want)
			}
		})
	}
}

func TestEventsTopic(t *testing.T) {
	top := devTopology(t)
	tests := []struct {
		name, aggregate, want string
		wantErr               error
	}{
		{name: "work effort", aggregate: "WorkEffort", want: "pyrite.work-effort.events"},
		{name: "deployment", aggregate: "Deployment", want: "pyrite.deployment.events"},
		{name: "segment is not a name", aggregate: "work-effort", wantErr: ErrUnknownAggregate},
		{name: "system has no events topic", aggregate: "System", wantErr: ErrUnknownAggregate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := top.EventsTopic(tt.aggregate)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("EventsTopic(%q) = %q, %v", tt.aggregate, got, err)
			}
		})
	}
}

func TestSubjectRouting(t *testing.T) {
	top := devTopology(t)
	tests := []struct {
		name, subject, aggregate, eventType string
		aggErr, typeErr                     error
	}{
		{name: "work effort", subject: "pyrite.workeffort.ProgressUpdated", aggregate: "WorkEffort", eventType: "WorkEffort:ProgressUpdated"},
		{name: "deployment", subject: "pyrite.deployment.TestsPassed", aggregate: "Deployment", eventType: "Deployment:TestsPassed"},
		{name: "system", subject: "pyrite.system.FileChanged", aggErr: ErrUnroutable, eventType: "System:FileChanged"},
		{name: "integration", subject: "pyrite.integration.WorkEffortCompleted", aggErr: ErrUnroutable, typeErr: ErrUnroutable},
		{name: "unknown namespace", subject: "pyrite.invoice.Paid", aggErr: ErrUnknownAggregate, typeErr: ErrUnknownAggregate},
		{name: "kebab namespace is not avro", subject: "pyrite.work-effort.Started", aggErr: ErrUnroutable, typeErr: ErrUnroutable},
		{name: "other prefix", subject: "acme.workeffort.Started", aggErr: ErrUnroutable, typeErr: ErrUnroutable},
		{name: "topic-name strategy subject", subject: "pyrite.work-effort.raw-value", aggErr: ErrUnroutable, typeErr: ErrUnroutable},
		{name: "nested name", subject: "pyrite.workeffort.inner.Started", aggErr: ErrUnroutable, typeErr: ErrUnroutable},
		{name: "empty", subject: "", aggErr: ErrUnroutable, typeErr: ErrUnroutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := top.AggregateOfSubject(tt.subject)
			if tt.aggErr != nil {
				if !errors.Is(err, tt.aggErr) {
					t.Errorf("AggregateOfSubject err = %v, want %v", err, tt.aggErr)
				}
			} else if err != nil || a.Name != tt.aggregate {
				t.Errorf("AggregateOfSubject = %+v, %v; want %s", a, err, tt.aggregate)
			}
			et, err := top.EventType(tt.subject)
			if tt.typeErr != nil {
				if !errors.Is(err, tt.typeErr) {
					t.Errorf("EventType err = %v, want %v", err, tt.typeErr)
				}
				return
			}
			if err != nil || et != tt.eventType {
				t.Fatalf("EventType = %q, %v; want %q", et, err, tt.eventType)
			}
			back, err := top.Subject(et)
			if err != nil || back != tt.subject {
				t.Fatalf("Subject(%q) = %q, %v; want %q", et, back, err, tt.subject)
			}
		})
	}
	if got, err := top.Subject("work-effort.completed.v1"); err != nil || got != "pyrite.integration.WorkEffortCompleted" {
		t.Errorf("Subject(integration) = %q, %v", got, err)
	}
}

func TestIntegrationSubject(t *testing.T) {
	tests := []struct {
		eventType, subject string
		version            int
		wantErr            bool
	}{
		{eventType: "work-effort.completed.v1", subject: "pyrite.integration.WorkEffortCompleted", version: 1},
		{eventType: "deployment.finished.v12", subject: "pyrite.integration.DeploymentFinished", version: 12},
		{eventType: "a2b.c.v3", subject: "pyrite.integration.A2bC", version: 3},
		{eventType: "work-effort.completed.v1234567890", wantErr: true},
		{eventType: "WorkEffort:Completed", wantErr: true},
		{eventType: "completed.v", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.eventType, func(t *testing.T) {
			subject, version, err := IntegrationSubject(tt.eventType)
			if tt.wantErr {
				if !errors.Is(err, ErrUnroutable) {
					t.Fatalf("err = %v, want ErrUnroutable", err)
				}
				return
			}
			if err != nil || subject != tt.subject || version != tt.version {
				t.Fatalf("IntegrationSubject(%q) = %q, %d, %v", tt.eventType, subject, version, err)
			}
		})
	}
}

// TestEverySchemaRoutes: every schema in schemas/ must route; a new
// aggregate namespace there without a declared aggregate fails here.
func TestEverySchemaRoutes(t *testing.T) {
	top := devTopology(t)
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no schema files")
	}
	for _, f := range files {
		t.Run(f.Path, func(t *testing.T) {
			switch f.Segment {
			case integrationNamespace:
				return // routed by type, see TestIntegrationSubject
			case "system":
				if et, err := top.EventType(f.Subject); err != nil || et != "System:"+f.Name {
					t.Fatalf("EventType = %q, %v", et, err)
				}
				return
			}
			a, err := top.AggregateOfSubject(f.Subject)
			if err != nil {
				t.Fatal(err)
			}
			et, err := top.EventType(f.Subject)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := top.RawTopic(et)
			if err != nil || raw != a.RawTopic() {
				t.Fatalf("RawTopic(%q) = %q, %v", et, raw, err)
			}
			if back, err := top.Subject(et); err != nil || back != f.Subject {
				t.Fatalf("Subject(%q) = %q, %v", et, back, err)
			}
		})
	}
	if got, err := top.Subject("work-effort.completed.v1"); err != nil || !slices.ContainsFunc(files, func(f schemas.File) bool {
		return f.Subject == got && f.Version == 1
	}) {
		t.Errorf("integration type work-effort.completed.v1 -> %q, %v: no such schema", got, err)
	}
}

func TestTopicsWithRole(t *testing.T) {
	top := devTopology(t)
	tests := []struct {
		role Role
		want []string
	}{
		{role: RoleRaw, want: []string{"pyrite.work-effort.raw", "pyrite.deployment.raw"}},
		{role: RoleEvents, want: []string{"pyrite.work-effort.events", "pyrite.deployment.events"}},
		{role: RoleSchemas, want: []string{"_schemas"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			var got []string
			for _, tp := range top.TopicsWithRole(tt.role) {
				got = append(got, tp.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzParseEventType: event types arrive from outside (ingest requests,
// record headers). Whatever parses must print back as given and route
// without panicking; whatever routes must map back through its subject.
func FuzzParseEventType(f *testing.F) {
	for _, s := range []string{"WorkEffort:ProgressUpdated", "System:FileChanged", "work-effort.completed.v1",
		"", ":", "A:B", "WorkEffort:*", "a.v1", "x.v0", "Invoice:Paid", "a-.b.v1"} {
		f.Add(s)
	}
	top := devTopology(f)
	f.Fuzz(func(t *testing.T, s string) {
		et, err := ParseEventType(s)
		topic, rerr := top.RawTopic(s)
		if err != nil {
			if !errors.Is(err, ErrUnroutable) {
				t.Fatalf("ParseEventType(%q) err %v is not ErrUnroutable", s, err)
			}
			if rerr == nil {
				t.Fatalf("RawTopic(%q) = %q for an unparsable type", s, topic)
			}
			return
		}
		if et.String() != s {
			t.Fatalf("ParseEventType(%q).String() = %q", s, et.String())
		}
		if rerr != nil {
			if !errors.Is(rerr, ErrUnknownAggregate) || et.Kind != KindDomain {
				t.Fatalf("RawTopic(%q) err = %v for kind %s", s, rerr, et.Kind)
			}
			return
		}
		if !strings.HasPrefix(topic, "pyrite.") {
			t.Fatalf("RawTopic(%q) = %q", s, topic)
		}
		subject, err := top.Subject(s)
		if et.Kind == KindIntegration {
			if err != nil && !errors.Is(err, ErrUnroutable) || err == nil && !strings.HasPrefix(subject, "pyrite.integration.") {
				t.Fatalf("Subject(%q) = %q, %v", s, subject, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Subject(%q): %v", s, err)
		}
		back, err := top.EventType(subject)
		if err != nil || back != s {
			t.Fatalf("EventType(Subject(%q)) = %q, %v", s, back, err)
		}
	})
}

// FuzzSubject: subjects come from the registry and from other services'
// records. A subject that maps to an event type must map back to itself.
func FuzzSubject(f *testing.F) {
	for _, s := range []string{"pyrite.workeffort.ProgressUpdated", "pyrite.system.FileChanged",
		"pyrite.invoice.Paid", "pyrite..X", "pyrite.workeffort.", "pyrite.work-effort.raw-value"} {
		f.Add(s)
	}
	top := devTopology(f)
	f.Fuzz(func(t *testing.T, s string) {
		et, err := top.EventType(s)
		if err != nil {
			if !errors.Is(err, ErrUnroutable) && !errors.Is(err, ErrUnknownAggregate) {
				t.Fatalf("EventType(%q) err %v is no sentinel", s, err)
			}
			return
		}
		back, err := top.Subject(et)
		if err != nil || back != s {
			t.Fatalf("Subject(EventType(%q)=%q) = %q, %v", s, et, back, err)
		}
	})
}
