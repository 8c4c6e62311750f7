// Package webhook is the webhook reactor: it POSTs the events that match a subscriber's
// patterns to the subscriber's URL, signed as the Standard Webhooks specification says
// (webhook-id, webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256>" of
// "<id>.<timestamp>.<body>" under the subscriber's whsec_ secret).
//
// Guarantees: at least once per subscriber and event. Each subscriber is its own handler on
// the group's bus, so one subscriber's failures are retried (through the group's retry
// topic, with backoff) and dead-lettered (after the configured attempts) without holding up
// or repeating the others. Deliveries are deduplicated by the event's ce_id in the store; a
// crash between a 2xx answer and that record repeats the POST once, with the same webhook-id
// and body, which is what Standard Webhooks receivers deduplicate on. A 2xx answer is
// success, 410 Gone is permanent (dead-lettered at once), anything else (including
// redirects, which are not followed) is retried. A Reactor is safe for concurrent use.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Group is the webhook reactor's consumer group (topology group).
const Group = "webhooks"

// Subscription is one subscriber endpoint.
type Subscription struct {
	// ID names the subscription in handler names, metrics and deduplication records: keep it
	// stable; lowercase letters, digits and '-', at most 63.
	ID string `json:"id"`
	// URL receives the POSTs (http or https).
	URL string `json:"url"`
	// Events are bus patterns: "WorkEffort:Completed", "WorkEffort:*", "*:Completed", "*",
	// or an integration type such as "work-effort.completed.v1".
	Events []string `json:"events"`
	// Secret is the subscriber's "whsec_<base64 key>"; or SecretEnv names the environment
	// variable that holds it, or SecretFile a file that does (exactly one of the three;
	// a trailing newline in the file is dropped).
	Secret     string `json:"secret,omitempty"`
	SecretEnv  string `json:"secretEnv,omitempty"`
	SecretFile string `json:"secretFile,omitempty"`

	key []byte
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ParseSubscriptions reads a JSON array of subscriptions (the --webhooks file), resolving
// SecretEnv through getenv (nil: os.Getenv), and reports every problem at once, each
// wrapping ErrBadConfig.
func ParseSubscriptions(data []byte, getenv func(string) string) ([]Subscription, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var subs []Subscription
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&subs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the array", ErrBadConfig)
	}
	var errs []error
	bad := func(i int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: subscription %d: "+format, append([]any{ErrBadConfig, i}, args...)...))
	}
	seen := map[string]bool{}
	probe := bus.New(bus.WithLogSize(0))
	for i := range subs {
		s := &subs[i]
		if !idRE.MatchString(s.ID) {
			bad(i, "id %q: want lowercase letters, digits and '-' (at most 63)", s.ID)
		} else if seen[s.ID] {
			bad(i, "id %q is used twice", s.ID)
		}
		seen[s.ID] = true
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(i, "url %q is not an http(s) URL", s.URL)
		}
		if len(s.Events) == 0 {
			bad(i, "events is empty")
		}
		for j, p := range s.Events {
			if _, err := probe.On(p, func(context.Context, *bus.Event) error { return nil }, bus.Options{Name: fmt.Sprintf("%d-%d", i, j)}); err != nil {
				bad(i, "events[%d]: %v", j, err)
			}
		}
		secret := s.Secret
		switch {
		case (s.Secret != "") && (s.SecretEnv != "") || (s.Secret != "" || s.SecretEnv != "") && s.SecretFile != "":
			bad(i, "set one of secret, secretEnv and secretFile, not both")
			continue
		case s.SecretFile != "":
			b, err := os.ReadFile(s.SecretFile)
			if err != nil {
				bad(i, "secretFile: %v", err)
				continue
			}
			secret = strings.TrimRight(string(b), "\r\n")
		case s.SecretEnv != "":
			if secret = getenv(s.SecretEnv); secret == "" {
				bad(i, "environment variable %s (secretEnv) is empty", s.SecretEnv)
				continue
			}
		case s.Secret == "":
			bad(i, "secret, secretEnv or secretFile is required")
			continue
		}
		key, err := DecodeSecret(secret)
		if err != nil {
			bad(i, "%v", err)
			continue
		}
		s.key = key
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return subs, nil
}

// Config configures the reactor.
type Config struct {
	// Subscriptions from ParseSubscriptions (their secrets resolved).
	Subscriptions []Subscription
	// Timeout bounds one POST; default 10s.
	Timeout time.Duration
	// Client sends the POSTs; default a client that does not follow redirects.
	Client *http.Client
}

// Reactor posts events to subscribers.
type Reactor struct {
	cfg     Config
	st      *store.Store
	metrics *reactor.Metrics
	log     *slog.Logger
	now     func() time.Time
}

// New returns the reactor; every subscription must come from ParseSubscriptions.
func New(cfg Config, st *store.Store, m *reactor.Metrics, log *slog.Logger) (*Reactor, error) {
	if len(cfg.Subscriptions) == 0 {
		return nil, fmt.Errorf("%w: no subscriptions", ErrBadConfig)
	}
	for _, s := range cfg.Subscriptions {
		if s.key == nil {
			return nil, fmt.Errorf("%w: subscription %q was not parsed (no key)", ErrBadConfig, s.ID)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reactor{cfg: cfg, st: st, metrics: m, log: log, now: time.Now}, nil
}

// Subscribe registers one handler per subscription and pattern on b, named
// "webhook-<id>" (with "#<n>" for the n-th further pattern of a subscription).
func (r *Reactor) Subscribe(b *bus.Bus) error {
	for _, s := range r.cfg.Subscriptions {
		h := r.handler(s)
		for i, p := range s.Events {
			name := "webhook-" + s.ID
			if i > 0 {
				name += fmt.Sprintf("#%d", i)
			}
			if _, err := b.On(p, h, bus.Options{Name: name}); err != nil {
				return fmt.Errorf("webhook %s: %w", s.ID, err)
			}
		}
	}
	return nil
}

func consumer(s Subscription) string { return "webhooks/" + s.ID }

func (r *Reactor) handler(s Subscription) bus.Handler {
	return func(ctx context.Context, ev *bus.Event) error {
		ran, err := reactor.Once(ctx, r.st, consumer(s), ev, func(ctx context.Context) error { return r.post(ctx, s, ev) })
		switch {
		case err != nil:
			r.metrics.Count(consumer(s), "webhook", "error", 1)
			return fmt.Errorf("webhook %s: %s %s: %w", s.ID, ev.Type, ev.ID, err)
		case !ran:
			r.metrics.Count(consumer(s), "webhook", "duplicate", 1)
		default:
			r.metrics.Count(consumer(s), "webhook", "ok", 1)
		}
		return nil
	}
}

// Payload is the JSON body of a delivery: the Standard Webhooks shape (type, timestamp,
// data) plus the event's envelope.
type Payload struct {
	Type          string         `json:"type"`
	Timestamp     time.Time      `json:"timestamp"`
	Data          map[string]any `json:"data"`
	ID            string         `json:"id"`
	AggregateID   string         `json:"aggregateId,omitempty"`
	CorrelationID string         `json:"correlationId,omitempty"`
	CausationID   string         `json:"causationId,omitempty"`
}

// MessageID is the webhook-id of ev's delivery to subscription id: the same on every
// attempt and redelivery.
func MessageID(subscription, eventID string) string {
	return "msg_" + reactor.EventID(eventID, "webhook/"+subscription)
}

// Body returns the delivery's JSON body, the same on every attempt.
func Body(ev *bus.Event) ([]byte, error) {
	data := ev.Data
	if data == nil {
		data = map[string]any{}
	}
	return json.Marshal(Payload{Type: ev.Type, Timestamp: ev.Time.UTC(), Data: data, ID: ev.ID,
		AggregateID: ev.AggregateID, CorrelationID: ev.CorrelationID, CausationID: ev.CausationID})
}

func (r *Reactor) post(ctx context.Context, s Subscription, ev *bus.Event) error {
	body, err := Body(ev)
	if err != nil {
		return bus.Permanent(fmt.Errorf("encode body: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return bus.Permanent(err)
	}
	id, now := MessageID(s.ID, ev.ID), r.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pyrite-webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(HeaderSignature, Sign(s.key, id, now, body))
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the whole URL
		}
		return fmt.Errorf("POST %s: %w", redact(s.URL), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return bus.Permanent(fmt.Errorf("POST %s: %s (the subscriber is gone)", redact(s.URL), resp.Status))
	default:
		return fmt.Errorf("POST %s: %s", redact(s.URL), resp.Status)
	}
}

// redact drops the user info and query of a URL for logs and headers (they may hold tokens).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
