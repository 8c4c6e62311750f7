// Package githubsaga is the seed's GitHubIntegrationSaga and its compensation (the seed's
// EventualConsistencyHandler), as one consumer group ("github") on the WorkEffort events.
//
//   - WorkEffort:Started: create a GitHub issue for the work effort (REST API, base URL
//     configurable for GitHub Enterprise Server), then emit WorkEffort:GitHubIssueCreated.
//     After Attempts failed tries (or at once for a refusal retrying cannot fix) emit
//     WorkEffort:GitHubIssueCreationFailed instead.
//   - WorkEffort:Completed: close the work effort's issue, then emit GitHubIssueClosed.
//   - WorkEffort:GitHubIssueCreationFailed: emit WorkEffort:NeedsManualSync (compensation).
//
// Guarantees. The saga's state (work effort to issue number) is stored in the same database
// transaction as its positions and the events it emits (reactor.Stateful and its outbox),
// so each event is decided once. A redelivered Started never creates a second issue: before
// the API call the saga records its intent, and when it finds an intent without an issue
// (a crash, a timeout, a 5xx after which the issue may or may not exist) it first looks for
// the issue among those created since the intent, by a marker in the issue body
// ("pyrite-work-effort-id: <id>"), and only creates one if none is there. If that lookup
// itself keeps failing, the saga gives up (CreationFailed, then NeedsManualSync) rather
// than risk a duplicate. Closing is idempotent. Events of one work effort are handled in
// order (a partition waits while one is retried); emitted events carry ce_ids derived from
// the trigger's, with the correlation id carried over.
package githubsaga

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v75/github"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Group is the saga's consumer group (topology group) and the store name of its state.
const Group = "github"

// Event types the saga reads and writes.
const (
	TypeStarted             = "WorkEffort:Started"
	TypeCompleted           = "WorkEffort:Completed"
	TypeIssueCreated        = "WorkEffort:GitHubIssueCreated"
	TypeIssueCreationFailed = "WorkEffort:GitHubIssueCreationFailed"
	TypeIssueClosed         = "WorkEffort:GitHubIssueClosed"
	TypeNeedsManualSync     = "WorkEffort:NeedsManualSync"
	manualSyncReason        = "GitHub issue creation failed"
	defaultBaseURL          = "https://api.github.com/"
	maxErrorText            = 500
	findPages               = 10
	sinceSkew               = 5 * time.Minute
	defaultAttempts         = 5
	defaultBackoff          = time.Second
	maxBackoff              = 30 * time.Second
	defaultTimeout          = 30 * time.Second
	defaultSweepInterval    = 10 * time.Second
	defaultSweepAge         = 30 * time.Second
)

// Config configures the saga.
type Config struct {
	// BaseURL is the REST API root: default https://api.github.com/; for GitHub Enterprise
	// Server https://HOST/api/v3/.
	BaseURL string
	// Token authenticates (a token with issues read and write on Repository).
	Token string
	// Repository is "owner/name": where issues are created.
	Repository string
	// Attempts is how many tries creating (or closing) an issue gets before the saga gives
	// up; default 5. Backoff is the wait before the second try, doubling up to 30s; default
	// 1s. Timeout bounds one API call; default 30s.
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	// HTTPClient carries the API calls; default http.DefaultClient's transport.
	HTTPClient *http.Client
	// SweepInterval and SweepAge tune the outbox sweeper (see reactor.Outbox.Sweep);
	// defaults 10s and 30s.
	SweepInterval time.Duration
	SweepAge      time.Duration
	// Description, when set, returns the work effort's description for the issue's body
	// ("" for none); the WorkEffort module sets it from its read model. A failure leaves the
	// description out.
	Description func(ctx context.Context, workEffortID string) (string, error)
}

// Enabled reports whether a repository is configured.
func (c Config) Enabled() bool { return c.Repository != "" }

// Validate reports every problem, joined.
func (c Config) Validate() error {
	var errs []error
	if owner, name, ok := strings.Cut(c.Repository, "/"); !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		errs = append(errs, fmt.Errorf("github repository %q: want owner/name", c.Repository))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("github token is empty"))
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("github base URL %q is not an http(s) URL", c.BaseURL))
		}
	}
	if c.Attempts < 0 || c.Backoff < 0 || c.Timeout < 0 || c.SweepInterval < 0 || c.SweepAge < 0 {
		errs = append(errs, errors.New("github attempts, backoff, timeout and sweep settings must not be negative"))
	}
	return errors.Join(errs...)
}

// Saga is the GitHub integration saga. Make it with New and call Run once.
type Saga struct {
	cfg         Config
	owner, repo string
	gh          *github.Client
	d           reactor.Deps
	outbox      *reactor.Outbox
	handler     *reactor.Stateful
	log         *slog.Logger
	now         func() time.Time
}

// New checks cfg and returns the saga on d (Store, Topology, Decoder, Emitter and Producer
// are required).
func New(cfg Config, d reactor.Deps) (*Saga, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saga: %w", err)
	}
	cfg.Attempts = cmp.Or(cfg.Attempts, defaultAttempts)
	cfg.Backoff = cmp.Or(cfg.Backoff, defaultBackoff)
	cfg.Timeout = cmp.Or(cfg.Timeout, defaultTimeout)
	cfg.SweepInterval = cmp.Or(cfg.SweepInterval, defaultSweepInterval)
	cfg.SweepAge = cmp.Or(cfg.SweepAge, defaultSweepAge)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	gh := github.NewClient(hc).WithAuthToken(cfg.Token)
	base := cfg.BaseURL
	if base == "" {
		base = defaultBaseURL
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("saga: github base URL: %w", err)
	}
	gh.BaseURL = u
	owner, repo, _ := strings.Cut(cfg.Repository, "/")
	s := &Saga{cfg: cfg, owner: owner, repo: repo, gh: gh, d: d, log: d.Log(), now: time.Now}
	s.outbox = reactor.NewOutbox(d.Store, Group, d.Producer, d.Appender, d.Metrics, s.log)
	s.handler = reactor.NewStateful(Group, Group, d.Store, s.outbox, d.Replays, s.Handle)
	return s, nil
}

// Run consumes the WorkEffort events as the "github" group and sweeps the outbox, until ctx
// ends; retry sets the in-place retry backoff of failing batches.
func (s *Saga) Run(ctx context.Context, topics []string, retry reactor.Retry) error {
	if err := Migrate(ctx, s.d.Store); err != nil {
		return err
	}
	r, err := s.d.BatchRunner(Group, topics, s.handler, retry)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx) })
	g.Go(func() error { s.outbox.Sweep(gctx, s.cfg.SweepInterval, s.cfg.SweepAge); return nil })
	return g.Wait()
}

// Handle decides about one event (see reactor.Handle).
func (s *Saga) Handle(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	switch ev.Type {
	case TypeStarted:
		return s.started(ctx, ev)
	case TypeCompleted:
		return s.completed(ctx, ev)
	case TypeIssueCreationFailed:
		return s.compensate(ctx, ev)
	}
	return nil, nil
}

func source(ev *bus.Event) store.TopicPartition {
	return store.TopicPartition{Topic: ev.Origin.Topic, Partition: ev.Origin.Partition}
}

func (s *Saga) count(effect, outcome string) { s.d.Metrics.Count(Group, effect, outcome, 1) }

// Marker is the line the saga puts in the body of a work effort's issue, by which it finds
// the issue again.
func Marker(workEffortID string) string {
	return "<!-- pyrite-work-effort-id: " + url.PathEscape(workEffortID) + " -->"
}

func (s *Saga) started(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	id := ev.AggregateID
	cur, found, err := LoadIssue(ctx, s.d.Store, id)
	if err != nil {
		return nil, err
	}
	if found && cur.State != IssueCreating {
		s.count("github_create", "duplicate")
		return nil, nil // redelivered (or repeated) Started: the issue exists or was given up
	}
	intent := Issue{WorkEffortID: id, State: IssueCreating, RequestedAt: s.now(), TriggerEventID: ev.ID}
	if found {
		intent = cur
	} else if err := s.d.Store.Update(ctx, Group, func(tx *store.Tx) error { return putIssue(tx, intent, s.now()) }); err != nil {
		return nil, err
	}
	title, _ := reactor.Data(ev.Data).String("title")
	issue, attempts, cerr := s.create(ctx, id, title, ev, intent.RequestedAt, found)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cause := reactor.CauseOf(ev)
	if issue != nil {
		s.count("github_create", "ok")
		rec, err := s.d.Emitter.Record(ctx, cause, reactor.Emit{Type: TypeIssueCreated, AggregateID: id, Step: "github/issue-created",
			Data: map[string]any{"issueNumber": int32(issue.GetNumber()), "url": issue.GetHTMLURL()}})
		if err != nil {
			return nil, err
		}
		next := intent
		next.State, next.Number, next.URL, next.LastError = IssueOpen, issue.GetNumber(), issue.GetHTMLURL(), ""
		return s.apply(ev, next, rec), nil
	}
	s.count("github_create", "error")
	msg := truncate(cerr.Error(), maxErrorText)
	s.log.Warn("saga: giving up creating a GitHub issue", "workEffort", id, "attempts", attempts, "err", cerr)
	rec, err := s.d.Emitter.Record(ctx, cause, reactor.Emit{Type: TypeIssueCreationFailed, AggregateID: id, Step: "github/issue-creation-failed",
		Data: map[string]any{"error": msg, "attempts": int32(attempts)}})
	if err != nil {
		return nil, err
	}
	next := intent
	next.State, next.LastError = IssueFailed, msg
	return s.apply(ev, next, rec), nil
}

func (s *Saga) apply(ev *bus.Event, next Issue, recs ...*kgo.Record) reactor.Apply {
	return func(tx *store.Tx) error {
		if err := putIssue(tx, next, s.now()); err != nil {
			return err
		}
		return s.outbox.Add(tx, source(ev), recs...)
	}
}

// create makes the issue, trying up to Attempts times. maybeExists says an earlier try may
// have created it: then, before every try, the saga looks for it and creates one only if the
// look-up succeeded and found none.
func (s *Saga) create(ctx context.Context, id, title string, ev *bus.Event, since time.Time, maybeExists bool) (*github.Issue, int, error) {
	delay := s.cfg.Backoff
	var lastErr error
	for attempt := 1; ; attempt++ {
		var (
			issue *github.Issue
			err   error
		)
		lookedUp := !maybeExists
		if maybeExists {
			if issue, err = s.find(ctx, id, since); err == nil {
				lookedUp = true
				if issue != nil {
					s.count("github_create", "found")
					return issue, attempt, nil
				}
			}
		}
		if lookedUp {
			issue, err = s.createOnce(ctx, id, title, ev)
			if err == nil {
				return issue, attempt, nil
			}
			if !isPermanent(err) {
				maybeExists = true // a timeout or 5xx may have created it
			}
		}
		lastErr = err
		if isPermanent(err) || attempt >= s.cfg.Attempts || ctx.Err() != nil {
			return nil, attempt, lastErr
		}
		s.log.Warn("saga: GitHub call failed, retrying", "workEffort", id, "attempt", attempt, "err", err)
		if !sleep(ctx, delay) {
			return nil, attempt, ctx.Err()
		}
		delay = min(2*delay, maxBackoff)
	}
}

func (s *Saga) createOnce(ctx context.Context, id, title string, ev *bus.Event) (*github.Issue, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if title == "" {
		title = "Work effort " + id
	}
	body := fmt.Sprintf("Work effort `%s` was started", strings.ReplaceAll(id, "`", "'"))
	if !ev.Time.IsZero() {
		body += " at " + ev.Time.UTC().Format(time.RFC3339)
	}
	body += ".\n\n"
	if s.cfg.Description != nil {
		if d, err := s.cfg.Description(ctx, id); err == nil && d != "" {
			body += d + "\n\n"
		}
	}
	body += Marker(id) + "\n"
	issue, _, err := s.gh.Issues.Create(ctx, s.owner, s.repo, &github.IssueRequest{Title: &title, Body: &body})
	if err != nil {
		return nil, fmt.Errorf("create issue: %w", err)
	}
	return issue, nil
}

// find returns the work effort's issue among those updated since since (minus a clock skew
// allowance), nil when there is none.
func (s *Saga) find(ctx context.Context, id string, since time.Time) (*github.Issue, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	marker := Marker(id)
	opts := &github.IssueListByRepoOptions{State: "all", Since: since.Add(-sinceSkew), Sort: "created", Direction: "asc",
		ListOptions: github.ListOptions{PerPage: 100}}
	for page := 1; page <= findPages; page++ {
		opts.ListOptions.Page = page
		issues, resp, err := s.gh.Issues.ListByRepo(ctx, s.owner, s.repo, opts)
		if err != nil {
			return nil, fmt.Errorf("look for the issue: %w", err)
		}
		for _, is := range issues {
			if !is.IsPullRequest() && strings.Contains(is.GetBody(), marker) {
				return is, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("look for the issue: more than %d pages of issues since %s", findPages, since.Format(time.RFC3339))
}

func (s *Saga) completed(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	id := ev.AggregateID
	cur, found, err := LoadIssue(ctx, s.d.Store, id)
	if err != nil {
		return nil, err
	}
	if !found || cur.State != IssueOpen {
		return nil, nil // no issue (never started, given up) or already closed
	}
	if err := s.close(ctx, id, cur.Number); err != nil {
		s.count("github_close", "error")
		return nil, err
	}
	s.count("github_close", "ok")
	rec, err := s.d.Emitter.Record(ctx, reactor.CauseOf(ev), reactor.Emit{Type: TypeIssueClosed, AggregateID: id,
		Step: "github/issue-closed", Data: map[string]any{"issueNumber": int32(cur.Number)}})
	if err != nil {
		return nil, err
	}
	next := cur
	next.State = IssueClosed
	return s.apply(ev, next, rec), nil
}

// close closes issue number, trying up to Attempts times; giving up is permanent (the
// Completed event goes to the dead-letter topic), and so is a refusal.
func (s *Saga) close(ctx context.Context, id string, number int) error {
	delay := s.cfg.Backoff
	state := "closed"
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		_, _, err := s.gh.Issues.Edit(cctx, s.owner, s.repo, number, &github.IssueRequest{State: &state})
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("close issue #%d of %s: %w", number, id, err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isPermanent(err) {
			return bus.Permanent(err)
		}
		if attempt >= s.cfg.Attempts {
			return bus.Permanent(fmt.Errorf("giving up after %d attempts: %w", attempt, err))
		}
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, maxBackoff)
	}
}

// compensate is the seed's EventualConsistencyHandler: a failed issue creation marks the
// work effort as needing a manual sync.
func (s *Saga) compensate(ctx context.Context, ev *bus.Event) (reactor.Apply, error) {
	rec, err := s.d.Emitter.Record(ctx, reactor.CauseOf(ev), reactor.Emit{Type: TypeNeedsManualSync, AggregateID: ev.AggregateID,
		Step: "github/needs-manual-sync", Data: map[string]any{
			"reason": manualSyncReason, "failedEventType": ev.Type, "failedEventId": ev.ID, "markedAt": s.now(),
		}})
	if err != nil {
		return nil, err
	}
	s.count("compensation", "ok")
	return func(tx *store.Tx) error {
		// Positions already keep a failure from being compensated twice; the record keeps it
		// so when positions are lost (a restored backup) and the events come again.
		if first, err := tx.MarkProcessed(Group+"/compensation", ev.ID); err != nil || !first {
			return err
		}
		return s.outbox.Add(tx, source(ev), rec)
	}, nil
}

// isPermanent reports whether GitHub refused in a way retrying cannot fix: a 4xx answer
// other than 408, 409 and 429 and other than a rate limit.
func isPermanent(err error) bool {
	var rl *github.RateLimitError
	var arl *github.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &arl) {
		return false
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		c := er.Response.StatusCode
		return c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusConflict && c != http.StatusTooManyRequests
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
