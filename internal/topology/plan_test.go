package topology

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newAdmin(t *testing.T, brokers int) *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPlan(t *testing.T, ctx context.Context, top *Topology, adm *kadm.Client) Plan {
	t.Helper()
	p, err := top.Plan(ctx, adm)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func mustCreate(t *testing.T, ctx context.Context, adm *kadm.Client, name string, partitions int32, rf int16, configs map[string]string) {
	t.Helper()
	cfg := make(map[string]*string)
	for k, v := range configs {
		cfg[k] = kadm.StringPtr(v)
	}
	if _, err := adm.CreateTopic(ctx, partitions, rf, cfg, name); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

func TestPlanApplyEmptyCluster(t *testing.T) {
	tests := []struct {
		name    string
		profile Profile
		brokers int
	}{
		{name: "dev on one broker", profile: Dev, brokers: 1},
		{name: "production on three brokers", profile: Production, brokers: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			adm := newAdmin(t, tt.brokers)
			top, err := New(tt.profile, seed()...)
			if err != nil {
				t.Fatal(err)
			}
			p := mustPlan(t, ctx, top, adm)
			if len(p.Changes) != len(top.Topics()) {
				t.Fatalf("plan has %d changes, want one per topic (%d):\n%s", len(p.Changes), len(top.Topics()), p)
			}
			for i, c := range p.Changes {
				m, ok := c.(MissingTopic)
				if !ok || m.Topic.Name != top.Topics()[i].Name {
					t.Fatalf("change %d = %v, want create %s", i, c, top.Topics()[i].Name)
				}
			}
			applied, err := Apply(ctx, adm, p)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if len(applied) != len(p.Changes) {
				t.Fatalf("applied %d of %d changes", len(applied), len(p.Changes))
			}
			if after := mustPlan(t, ctx, top, adm); !after.Empty() {
				t.Fatalf("plan after apply is not empty:\n%s", after)
			}
			// Idempotent: the same (now stale) plan again changes nothing and fails nothing.
			if _, err := Apply(ctx, adm, p); err != nil {
				t.Fatalf("second apply: %v", err)
			}
			if after := mustPlan(t, ctx, top, adm); !after.Empty() {
				t.Fatalf("plan after second apply is not empty:\n%s", after)
			}
			// What apply created is what was declared, as the cluster reports it.
			rcs, err := adm.DescribeTopicConfigs(ctx, "pyrite.system", "_schemas")
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]string{
				"pyrite.system": {"retention.ms": "86400000", "cleanup.policy": "delete"},
				"_schemas":      {"cleanup.policy": "compact"},
			}
			for _, rc := range rcs {
				for k, v := range want[rc.Name] {
					found := false
					for _, c := range rc.Configs {
						if c.Key == k {
							found = true
							if c.MaybeValue() != v {
								t.Errorf("%s %s = %q, want %q", rc.Name, k, c.MaybeValue(), v)
							}
						}
					}
					if !found {
						t.Errorf("%s: %s not described", rc.Name, k)
					}
				}
			}
		})
	}
}

func TestPlanDrift(t *testing.T) {
	minISR := "1"
	domain := map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": minISR, "max.message.bytes": "1048588"}
	tests := []struct {
		name string
		// setup runs on an empty cluster before the topology is applied
		// once (so everything else exists and matches).
		setup func(t *testing.T, ctx context.Context, adm *kadm.Client)
		// after runs after the first apply.
		after func(t *testing.T, ctx context.Context, adm *kadm.Client)
		// want are the expected drift lines (substring of Change.String),
		// in plan order.
		want []string
		// unfixable are those that must remain after apply.
		unfixable []string
	}{
		{
			name: "fewer partitions are added",
			setup: func(t *testing.T, ctx context.Context, adm *kadm.Client) {
				mustCreate(t, ctx, adm, "pyrite.system", 1, 1, map[string]string{"cleanup.policy": "delete", "retention.ms": "86400000", "min.insync.replicas": "1", "max.message.bytes": "1048588"})
			},
			want: []string{"~ pyrite.system: partitions 1 -> 3"},
		},
		{
			name: "config drift is set back",
			after: func(t *testing.T, ctx context.Context, adm *kadm.Client) {
				_, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
					{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("5000")},
					{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")},
				}, "pyrite.work-effort.events")
				if err != nil {
					t.Fatal(err)
				}
				_, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
					{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2000")},
				}, "pyrite.github.dlq")
				if err != nil {
					t.Fatal(err)
				}
				// Deleting a topic override falls back to the broker
				// default; here that equals the declaration (1), so the
				// effective value matches and no drift may be reported.
				_, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
					{Op: kadm.DeleteConfig, Name: "min.insync.replicas"},
				}, "pyrite.webhooks.retry")
				if err != nil {
					t.Fatal(err)
				}
			},
			want: []string{
				`~ pyrite.work-effort.events: cleanup.policy "compact" -> "delete"`,
				`~ pyrite.work-effort.events: retention.ms "5000" -> "-1"`,
				`~ pyrite.github.dlq: max.message.bytes "2000" -> "1048588"`,
			},
		},
		{
			name: "events behind raw: added and pair reported",
			setup: func(t *testing.T, ctx context.Context, adm *kadm.Client) {
				mustCreate(t, ctx, adm, "pyrite.work-effort.events", 1, 1, domain)
			},
			want: []string{
				"~ pyrite.work-effort.events: partitions 1 -> 3 (moves keys",
				"! WorkEffort: pyrite.work-effort.raw has 3 partitions, pyrite.work-effort.events has 1: per-aggregate order breaks between them (apply raises both to 3)",
			},
		},
		{
			name: "raw beyond declaration: not fixable, never shrunk",
			setup: func(t *testing.T, ctx context.Context, adm *kadm.Client) {
				mustCreate(t, ctx, adm, "pyrite.deployment.raw", 5, 1, domain)
			},
			want: []string{
				"! pyrite.deployment.raw: 5 partitions, declared 3",
				"! Deployment: pyrite.deployment.raw has 5 partitions, pyrite.deployment.events has 3",
			},
			unfixable: []string{
				"! pyrite.deployment.raw: 5 partitions, declared 3",
				"! Deployment: pyrite.deployment.raw has 5 partitions, pyrite.deployment.events has 3",
			},
		},
		{
			name: "existing _schemas made by the registry gets its managed configs",
			setup: func(t *testing.T, ctx context.Context, adm *kadm.Client) {
				mustCreate(t, ctx, adm, "_schemas", 1, 1, map[string]string{"cleanup.policy": "compact"})
			},
			after: func(t *testing.T, ctx context.Context, adm *kadm.Client) {
				_, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
					{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")},
				}, "_schemas")
				if err != nil {
					t.Fatal(err)
				}
			},
			want: []string{`~ _schemas: cleanup.policy "delete" -> "compact"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			adm := newAdmin(t, 1)
			top, err := New(Dev, seed()...)
			if err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(t, ctx, adm)
			}
			if tt.after != nil {
				if _, err := Apply(ctx, adm, mustPlan(t, ctx, top, adm)); err != nil {
					t.Fatalf("first apply: %v", err)
				}
				tt.after(t, ctx, adm)
			}
			p := mustPlan(t, ctx, top, adm)
			var got []string
			for _, c := range p.Changes {
				if _, missing := c.(MissingTopic); !missing {
					got = append(got, c.String())
				}
			}
			checkLines(t, "plan", got, tt.want)

			if _, err := Apply(ctx, adm, p); err != nil {
				t.Fatalf("apply: %v", err)
			}
			after := mustPlan(t, ctx, top, adm)
			var left []string
			for _, c := range after.Changes {
				if c.Fixable() {
					t.Errorf("fixable change left after apply: %s", c)
				}
				left = append(left, c.String())
			}
			checkLines(t, "after apply", left, tt.unfixable)
		})
	}
}

func TestPlanReplicationDrift(t *testing.T) {
	ctx := testCtx(t)
	adm := newAdmin(t, 3)
	top, err := New(Production, seed()...)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, ctx, adm, "pyrite.system", 12, 1, map[string]string{
		"cleanup.policy": "delete", "retention.ms": "86400000", "min.insync.replicas": "2", "max.message.bytes": "1048588"})
	final, err := top.Ensure(ctx, adm)
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	checkLines(t, "after ensure", linesOf(final), []string{"! pyrite.system: replication factor 1, declared 3 (not fixable"})
	// min.insync.replicas 2 on a topic replicated once would stop acks=all
	// produces: reported, never applied.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "min.insync.replicas", Value: kadm.StringPtr("1")},
	}, "pyrite.system"); err != nil {
		t.Fatal(err)
	}
	final, err = top.Ensure(ctx, adm)
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	checkLines(t, "after ensure", linesOf(final), []string{
		"! pyrite.system: replication factor 1, declared 3 (not fixable",
		`! pyrite.system: min.insync.replicas "1", declared "2" (not applied: the topic's replication factor 1 is below it`,
	})
}

func TestEnsureConverges(t *testing.T) {
	ctx := testCtx(t)
	adm := newAdmin(t, 1)
	top, err := New(Dev, seed(WithPartitions(2))...)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := top.Ensure(ctx, adm); err != nil || !p.Empty() {
		t.Fatalf("ensure: %v\n%s", err, p)
	}
	// The declaration grows (a later release declares more partitions).
	grown, err := New(Dev, seed(WithPartitions(4))...)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, ctx, grown, adm)
	if n := len(p.Changes); n != len(grown.Topics())-3 { // every topic but the single-partition _schemas, pyrite.replays and pyrite.readers
		t.Fatalf("grown plan has %d changes, want %d:\n%s", n, len(grown.Topics())-3, p)
	}
	if p, err := grown.Ensure(ctx, adm); err != nil || !p.Empty() {
		t.Fatalf("ensure grown: %v\n%s", err, p)
	}
	// Going back is reported, never applied.
	p, err = top.Ensure(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Unfixable()) == 0 || len(p.Fixable()) != 0 {
		t.Fatalf("shrinking plan: %s", p)
	}
	details, err := adm.ListTopics(ctx, "pyrite.system")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["pyrite.system"].Partitions); n != 4 {
		t.Fatalf("pyrite.system has %d partitions after a shrinking ensure, want 4", n)
	}
}

func TestSameConfigValue(t *testing.T) {
	tests := []struct {
		name, key, got, want string
		same                 bool
	}{
		{name: "equal", key: "retention.ms", got: "-1", want: "-1", same: true},
		{name: "numeric leading zero", key: "retention.ms", got: "0100", want: "100", same: true},
		{name: "different numbers", key: "retention.ms", got: "604800000", want: "-1", same: false},
		{name: "policy order", key: "cleanup.policy", got: "compact,delete", want: "delete, compact", same: true},
		{name: "policy differs", key: "cleanup.policy", got: "compact", want: "delete", same: false},
		{name: "unset", key: "min.insync.replicas", got: "", want: "2", same: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameConfigValue(tt.key, tt.got, tt.want); got != tt.same {
				t.Fatalf("sameConfigValue(%q, %q, %q) = %v", tt.key, tt.got, tt.want, got)
			}
		})
	}
}

func TestPlanFailsWithoutCluster(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.RetryTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := devTopology(t).Plan(ctx, kadm.NewClient(cl)); err == nil {
		t.Fatal("plan against no cluster succeeded")
	}
}

func linesOf(p Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, c.String())
	}
	return out
}

// checkLines wants got[i] to start with want[i], for equal lengths.
func checkLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}
	if !ok {
		t.Fatalf("%s:\n got:\n  %s\nwant (prefixes):\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func ExamplePlan_String() {
	p := Plan{Changes: []Change{
		PartitionDrift{Topic: "pyrite.system", Role: RoleSystem, Declared: 3, Actual: 1},
		ConfigDrift{Topic: "pyrite.system", Key: ConfigRetentionMs, Declared: "86400000", Actual: "604800000"},
		PartitionDrift{Topic: "pyrite.work-effort.raw", Role: RoleRaw, Declared: 3, Actual: 6},
	}}
	fmt.Println(p)
	fmt.Println(len(p.Fixable()), "fixable")
	// Output:
	// ~ pyrite.system: partitions 1 -> 3
	// ~ pyrite.system: retention.ms "604800000" -> "86400000"
	// ! pyrite.work-effort.raw: 6 partitions, declared 3: Kafka cannot remove partitions (not fixable: raise the declaration or recreate the topic)
	// 2 fixable
}
