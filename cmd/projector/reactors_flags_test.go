package main

import (
	"context"
	"flag"
	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/reactor"
)

func TestReactorFlagsHaveHelpAndEnv(t *testing.T) {
	var c cfg
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	c.Bind(fs, config.DefaultProjector)
	c.bindReactors(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			t.Errorf("--%s has no help text", f.Name)
		}
		if !strings.Contains(f.Usage, "env PYRITE_") {
			t.Errorf("--%s does not name its PYRITE_* variable", f.Name)
		}
	})
}

func TestReactorFlags(t *testing.T) {
	wiring, err := modules.Wire()
	if err != nil {
		t.Fatal(err)
	}
	hooks := filepath.Join(t.TempDir(), "hooks.json")
	if err := os.WriteFile(hooks, []byte(`[{"id":"a","url":"http://x","events":["*"],"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"id":"a"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "es-token")
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(tokenFile, []byte("es-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr []string
		check   func(t *testing.T, c *cfg)
	}{
		{name: "defaults: integration and deployment on, the rest off",
			check: func(t *testing.T, c *cfg) {
				r, err := c.reactors(wiring)
				if err != nil || len(r.Integrations) != 1 || len(r.Domain) != 1 || r.Domain[0].Group != deployment.Group || r.SMTP.Enabled() || len(r.Webhooks.Subscriptions) != 0 {
					t.Errorf("reactors %+v, %v", r, err)
				}
			}},
		{name: "environment sets values, flags win",
			env:  map[string]string{"PYRITE_DEPLOYMENT": "false", "PYRITE_DEPLOYMENT_STEP_TIMEOUT": "90s", "PYRITE_WEBHOOK_ATTEMPTS": "3", "PYRITE_SMTP_HOST": "mail.local", "PYRITE_SMTP_FROM": "p@example.com"},
			args: []string{"--webhook-attempts", "4", "--webhooks", hooks},
			check: func(t *testing.T, c *cfg) {
				r, err := c.reactors(wiring)
				if err != nil || len(r.Domain) != 0 || c.DeployTimeout != 90*time.Second || r.WebhookAttempts != 4 ||
					r.SMTP.Host != "mail.local" || len(r.Webhooks.Subscriptions) != 1 {
					t.Errorf("reactors %+v, %v", r, err)
				}
			}},
		{name: "GitHub token from the environment",
			env:  map[string]string{"PYRITE_GITHUB_TOKEN": "tok"},
			args: []string{"--github-repo", "o/r"},
			check: func(t *testing.T, c *cfg) {
				r, err := c.reactors(wiring)
				if err != nil || c.GitHub.Token != "tok" || c.GitHub.Repository != "o/r" {
					t.Errorf("github %+v, %v", c.GitHub, err)
				}
				if groups := specGroups(r.Domain); !slices.Contains(groups, githubsaga.Group) {
					t.Errorf("reactors %v run no GitHub saga", groups)
				}
			}},
		{name: "event store URL from the environment, token from a file",
			env:  map[string]string{"PYRITE_EVENTSTORE_URL": "http://ingest:8080"},
			args: []string{"--eventstore-token-file", tokenFile},
			check: func(t *testing.T, c *cfg) {
				if r, err := c.reactors(wiring); err != nil || r.EventStore.URL != "http://ingest:8080" || r.EventStore.Token != "es-token" {
					t.Errorf("event store %+v, %v", r.EventStore, err)
				}
			}},
		{name: "no event store by default: the direct path",
			check: func(t *testing.T, c *cfg) {
				if r, err := c.reactors(wiring); err != nil || r.EventStore.URL != "" {
					t.Errorf("event store %+v, %v", r.EventStore, err)
				}
			}},
		{name: "empty event store token file", args: []string{"--eventstore-token-file", emptyFile}, wantErr: []string{"--eventstore-token-file", "is empty"}},
		{name: "every problem at once",
			env:     map[string]string{"PYRITE_WEBHOOK_TIMEOUT": "soon", "PYRITE_GITHUB_TOKEN": "", "GITHUB_TOKEN": ""},
			args:    []string{"--smtp-host", "m", "--smtp-from", "not an address", "--github-repo", "norepo", "--deployment-poll", "0s"},
			wantErr: []string{"PYRITE_WEBHOOK_TIMEOUT", "smtp sender", "owner/name", "token is empty", "--deployment-poll"}},
		{name: "smtp settings without a host", args: []string{"--smtp-from", "p@example.com"}, wantErr: []string{"--smtp-host is not"}},
		{name: "bad webhooks file", args: []string{"--webhooks", bad}, wantErr: []string{"--webhooks", "url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var c cfg
			fs := flag.NewFlagSet("projector", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.Bind(fs, config.DefaultProjector)
			fs.StringVar(&c.Store, "store", "x.db", "")
			fs.StringVar(&c.Profile, "profile", "dev", "")
			c.BatchSize = 1
			c.bindReactors(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := c.validate()
			if err == nil {
				_, err = c.reactors(wiring)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, &c)
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("run refuses a bad configuration before it starts", func(t *testing.T) {
		err := run(context.Background(), []string{"--github-repo", "x"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "owner/name") {
			t.Errorf("run: %v", err)
		}
	})
}

// specGroups are the groups of specs.
func specGroups(specs []reactor.Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Group)
	}
	return out
}
