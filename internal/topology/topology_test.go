package topology

import (
	"errors"
	"slices"
	"testing"
)

func TestNewDeclaresEveryTopic(t *testing.T) {
	wantNames := []string{
		"pyrite.work-effort.raw", "pyrite.work-effort.events",
		"pyrite.deployment.raw", "pyrite.deployment.events",
		"pyrite.integration", "pyrite.system",
		"pyrite.upcaster.dlq",
		"pyrite.notifications.retry", "pyrite.notifications.dlq",
		"pyrite.webhooks.retry", "pyrite.webhooks.dlq",
		"pyrite.integration.retry", "pyrite.integration.dlq",
		"pyrite.work-efforts.retry", "pyrite.work-efforts.dlq",
		"pyrite.github.retry", "pyrite.github.dlq",
		"pyrite.deployment.retry", "pyrite.deployment.dlq",
		"_schemas", "pyrite.replays", "pyrite.readers",
	}
	tests := []struct {
		name       string
		profile    Profile
		partitions int32
		rf         int16
		minISR     string
	}{
		{name: "dev", profile: Dev, partitions: 3, rf: 1, minISR: "1"},
		{name: "production", profile: Production, partitions: 12, rf: 3, minISR: "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := New(tt.profile, seed()...)
			if err != nil {
				t.Fatal(err)
			}
			topics := top.Topics()
			var names []string
			for _, tp := range topics {
				names = append(names, tp.Name)
			}
			if !slices.Equal(names, wantNames) {
				t.Fatalf("topics:\n got %q\nwant %q", names, wantNames)
			}
			for _, tp := range topics {
				if tp.ReplicationFactor != tt.rf {
					t.Errorf("%s: replication %d, want %d", tp.Name, tp.ReplicationFactor, tt.rf)
				}
				if got := tp.Configs[ConfigMinInsyncReplicas]; got != tt.minISR {
					t.Errorf("%s: min.insync.replicas %q, want %q", tp.Name, got, tt.minISR)
				}
				if got := tp.Configs[ConfigMaxMessageBytes]; got != "1048588" {
					t.Errorf("%s: max.message.bytes %q", tp.Name, got)
				}
				wantParts := tt.partitions
				if tp.Role == RoleSchemas || tp.Role == RoleReplays || tp.Role == RoleReaders {
					wantParts = 1
				}
				if tp.Partitions != wantParts {
					t.Errorf("%s: partitions %d, want %d", tp.Name, tp.Partitions, wantParts)
				}
			}
			retention := map[string]string{
				"pyrite.work-effort.raw":    "-1",
				"pyrite.work-effort.events": "-1",
				"pyrite.deployment.events":  "-1",
				"pyrite.system":             "86400000",
				"pyrite.integration":        "7776000000",
				"pyrite.github.retry":       "604800000",
				"pyrite.github.dlq":         "2592000000",
			}
			for name, want := range retention {
				tp, ok := top.Topic(name)
				if !ok {
					t.Fatalf("%s not declared", name)
				}
				if got := tp.Configs[ConfigRetentionMs]; got != want {
					t.Errorf("%s: retention.ms %q, want %q", name, got, want)
				}
				if got := tp.Configs[ConfigCleanupPolicy]; got != "delete" {
					t.Errorf("%s: cleanup.policy %q, want delete", name, got)
				}
			}
			sch, _ := top.Topic(SchemasTopic)
			if sch.Configs[ConfigCleanupPolicy] != "compact" {
				t.Errorf("_schemas cleanup.policy %q", sch.Configs[ConfigCleanupPolicy])
			}
			if _, ok := sch.Configs[ConfigRetentionMs]; ok {
				t.Errorf("_schemas declares retention.ms; a compacted topic must not expire its keys")
			}
			if _, ok := top.Topic("pyrite.upcaster.retry"); ok {
				t.Errorf("upcaster must have no retry topic")
			}
		})
	}
}

func TestTopicsReturnsCopies(t *testing.T) {
	top, err := New(Dev, seed()...)
	if err != nil {
		t.Fatal(err)
	}
	ts := top.Topics()
	ts[0].Configs[ConfigRetentionMs] = "1"
	ts[0].Partitions = 99
	again, _ := top.Topic(ts[0].Name)
	if again.Configs[ConfigRetentionMs] != "-1" || again.Partitions != 3 {
		t.Fatalf("declaration changed through a returned copy: %+v", again)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name    string
		profile Profile
		opts    []Option
		wantErr error
		check   func(t *testing.T, top *Topology)
	}{
		{
			name:    "extra group gets retry and dlq",
			profile: Dev,
			opts:    []Option{WithGroups(Group{Name: "analytics", Retry: true}, Group{Name: "audit"})},
			check: func(t *testing.T, top *Topology) {
				for _, name := range []string{"pyrite.analytics.retry", "pyrite.analytics.dlq", "pyrite.audit.dlq"} {
					if _, ok := top.Topic(name); !ok {
						t.Errorf("%s not declared", name)
					}
				}
				if _, ok := top.Topic("pyrite.audit.retry"); ok {
					t.Errorf("audit declared without retry got a retry topic")
				}
				if got, err := top.RetryTopic("analytics"); err != nil || got != "pyrite.analytics.retry" {
					t.Errorf("RetryTopic(analytics) = %q, %v", got, err)
				}
				if _, err := top.RetryTopic("audit"); !errors.Is(err, ErrUnknownGroup) {
					t.Errorf("RetryTopic(audit) err = %v, want ErrUnknownGroup", err)
				}
			},
		},
		{
			name:    "extra aggregate",
			profile: Dev,
			opts:    []Option{WithAggregates(Aggregate{Name: "PullRequest"})},
			check: func(t *testing.T, top *Topology) {
				if got, err := top.RawTopic("PullRequest:Opened"); err != nil || got != "pyrite.pull-request.raw" {
					t.Errorf("RawTopic = %q, %v", got, err)
				}
			},
		},
		{
			name:    "partitions override applies to pairs but not _schemas",
			profile: Production,
			opts:    []Option{WithPartitions(5)},
			check: func(t *testing.T, top *Topology) {
				raw, _ := top.Topic("pyrite.work-effort.raw")
				ev, _ := top.Topic("pyrite.work-effort.events")
				sch, _ := top.Topic(SchemasTopic)
				if raw.Partitions != 5 || ev.Partitions != 5 || sch.Partitions != 1 {
					t.Errorf("partitions raw %d events %d _schemas %d", raw.Partitions, ev.Partitions, sch.Partitions)
				}
			},
		},
		{name: "unknown profile", profile: "staging", wantErr: ErrUnknownProfile},
		{name: "zero profile", profile: "", wantErr: ErrUnknownProfile},
		{name: "lowercase aggregate", profile: Dev, opts: []Option{WithAggregates(Aggregate{Name: "workEffort"})}, wantErr: ErrInvalidDeclaration},
		{name: "reserved System aggregate", profile: Dev, opts: []Option{WithAggregates(Aggregate{Name: "System"})}, wantErr: ErrInvalidDeclaration},
		{name: "reserved Integration aggregate", profile: Dev, opts: []Option{WithAggregates(Aggregate{Name: "Integration"})}, wantErr: ErrInvalidDeclaration},
		{name: "duplicate aggregate", profile: Dev, opts: []Option{WithAggregates(Aggregate{Name: "WorkEffort"})}, wantErr: ErrInvalidDeclaration},
		{name: "namespace clash", profile: Dev, opts: []Option{WithAggregates(Aggregate{Name: "Workeffort"})}, wantErr: ErrInvalidDeclaration},
		{name: "duplicate group", profile: Dev, opts: []Option{WithGroups(Group{Name: "github"})}, wantErr: ErrInvalidDeclaration},
		{name: "bad group name", profile: Dev, opts: []Option{WithGroups(Group{Name: "Work_Efforts"})}, wantErr: ErrInvalidDeclaration},
		{name: "negative partitions", profile: Dev, opts: []Option{WithPartitions(-1)}, wantErr: ErrInvalidDeclaration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := New(tt.profile, seed(tt.opts...)...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, top)
		})
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		in      string
		want    Profile
		wantErr bool
	}{
		{in: "dev", want: Dev},
		{in: "production", want: Production},
		{in: "prod", wantErr: true},
		{in: "", wantErr: true},
		{in: "Dev", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseProfile(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownProfile) {
					t.Fatalf("err = %v, want ErrUnknownProfile", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseProfile(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}
