package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newKafka(t *testing.T, brokers int) (string, *kadm.Client) {
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
	return strings.Join(c.ListenAddrs(), ","), kadm.NewClient(cl)
}

func TestTopologyCommands(t *testing.T) {
	brokers, _ := newKafka(t, 1)
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{name: "plan on empty cluster lists every topic", args: []string{"topology", "plan", "--brokers", brokers}, code: 0,
			stdout: []string{"topology dev: 22 topics declared", "+ create pyrite.work-effort.raw: partitions 3, replication 1", "+ create _schemas: partitions 1", "22 changes: 22 fixable"}},
		{name: "plan --exit-code with changes", args: []string{"topology", "plan", "--brokers", brokers, "--exit-code"}, code: 1,
			stdout: []string{"22 changes"}},
		{name: "apply creates them", args: []string{"topology", "apply", "--brokers", brokers}, code: 0,
			stdout: []string{"applied + create pyrite.system", "done: 22 changes applied"}},
		{name: "plan after apply is empty", args: []string{"topology", "plan", "--brokers", brokers, "--exit-code"}, code: 0,
			stdout: []string{"no changes"}},
		{name: "apply again changes nothing", args: []string{"topology", "apply", "--brokers", brokers}, code: 0,
			stdout: []string{"no changes"}},
		{name: "production profile on one broker reports replication", args: []string{"topology", "plan", "--brokers", brokers, "--profile", "production"}, code: 0,
			stdout: []string{"topology production", "! pyrite.system: replication factor 1, declared 3", "~ pyrite.system: partitions 3 -> 12"}},
		{name: "production apply cannot fix replication", args: []string{"topology", "apply", "--brokers", brokers, "--profile", "production"}, code: 1,
			stdout: []string{"left after apply", "! pyrite.system: replication factor 1, declared 3"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, s.args...)
			if code != s.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, s.code, stdout, stderr)
			}
			for _, want := range s.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

func TestTopologyBrokersFromEnv(t *testing.T) {
	brokers, adm := newKafka(t, 1)
	t.Setenv("PYRITE_BROKERS", brokers)
	if code, stdout, stderr := runCLI(t, "topology", "apply"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	details, err := adm.ListTopics(ctx, "pyrite.work-effort.events")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["pyrite.work-effort.events"].Partitions); n != 3 {
		t.Fatalf("pyrite.work-effort.events has %d partitions, want 3", n)
	}
}

func TestTopologyApplyReportsUnfixable(t *testing.T) {
	brokers, adm := newKafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 5, 1, nil, "pyrite.deployment.raw"); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, "topology", "apply", "--brokers", brokers)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stdout)
	}
	for _, want := range []string{
		`applied ~ pyrite.deployment.raw: retention.ms "604800000" -> "-1"`,
		"left after apply (2):",
		"! pyrite.deployment.raw: 5 partitions, declared 3",
		"! Deployment: pyrite.deployment.raw has 5 partitions, pyrite.deployment.events has 3",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestTopologyUnreachable(t *testing.T) {
	code, _, stderr := runCLI(t, "topology", "plan", "--brokers", "127.0.0.1:1", "--timeout", "500ms")
	if code != 1 || !strings.Contains(stderr, "pyrite: topology: list topics") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
