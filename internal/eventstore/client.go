package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Record headers the append route reads (the CloudEvents Kafka binding).
const (
	HeaderID   = "ce_id"
	HeaderType = "ce_type"
)

// AppendPath is ingest's append route (POST), which Client calls.
const AppendPath = "/v1/eventstore/append"

// AppendRequest is the body of POST /v1/eventstore/append: events of one partition (one
// aggregate always is), appended in one transaction.
type AppendRequest struct {
	Events []AppendEvent `json:"events"`
}

// AppendEvent is one event of an AppendRequest, already encoded.
type AppendEvent struct {
	// AggregateID is the Kafka key and ce_subject.
	AggregateID string `json:"aggregateId"`
	// ExpectedVersion, when set, is the version the stream must be at just before this event.
	ExpectedVersion *int64 `json:"expectedVersion,omitempty"`
	// Value is the Kafka record value, Confluent-framed Avro (base64 in JSON).
	Value []byte `json:"value"`
	// Headers are the record headers; ce_id and ce_type are required.
	Headers map[string]string `json:"headers"`
}

// ErrRefused means the append route refused an append for good (the request is malformed,
// an event does not fit its schema, the token may not write its type): retrying the same
// append cannot succeed.
var ErrRefused = errors.New("eventstore: append refused")

// ClientConfig configures a Client; zero values take the defaults.
type ClientConfig struct {
	// URL is ingest's base URL (e.g. http://ingest:8080). Required.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>"; it must allow the types
	// appended.
	Token string
	// HTTPClient defaults to a client with a 30 s timeout per request.
	HTTPClient *http.Client
	// Attempts is how many times an append is sent in all when it fails transiently (a
	// network error, a 5xx or 429 answer): default 5. Each retry carries the same ce_ids, so
	// one that was written before answers as a duplicate.
	Attempts int
	// Backoff is the wait before the first retry, doubling up to 2 s (default 100 ms); a
	// Retry-After answer waits that long instead, at most 2 s.
	Backoff time.Duration
}

const maxClientBackoff = 2 * time.Second

// Client appends events through an ingest's event store over HTTP (POST
// /v1/eventstore/append), for writers outside ingest: it has Store.Append's signature and
// errors (*ConflictError, *IDConflictError, ErrUnavailable after the retries, ErrRefused).
// It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	url     string
	appends *prometheus.CounterVec
	retries prometheus.Counter
}

// NewClient returns a client of cfg.URL and registers its metrics on reg (not when nil):
//
//	pyrite_eventstore_client_appends_total{outcome}   written, duplicate, conflict, refused, unavailable
//	pyrite_eventstore_client_retries_total
func NewClient(cfg ClientConfig, reg prometheus.Registerer) (*Client, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: event store client: URL is required", ErrBadConfig)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	cfg.Attempts = cmp.Or(cfg.Attempts, 5)
	cfg.Backoff = cmp.Or(cfg.Backoff, 100*time.Millisecond)
	c := &Client{
		cfg: cfg, url: strings.TrimRight(cfg.URL, "/") + AppendPath,
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_eventstore_client_appends_total",
			Help: "Appends sent to ingest's event store, by outcome (written, duplicate, conflict, refused, unavailable).",
		}, []string{"outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pyrite_eventstore_client_retries_total",
			Help: "Appends sent again after a transient failure.",
		}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.appends, c.retries} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("event store client metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Append appends events (each with its Record's Key, Value and Headers, ID as ce_id, Type as
// ce_type and Expected, -1 for any) as one transaction, retrying transient failures. For a
// duplicate (every id written before) the first write's results come back with Duplicate
// set.
func (c *Client) Append(ctx context.Context, events []Pending) ([]Appended, error) {
	if len(events) == 0 {
		return nil, nil
	}
	req := AppendRequest{Events: make([]AppendEvent, len(events))}
	for i, ev := range events {
		hs := make(map[string]string, len(ev.Record.Headers)+2)
		for _, h := range ev.Record.Headers {
			hs[h.Key] = string(h.Value)
		}
		hs[HeaderID], hs[HeaderType] = ev.ID, ev.Type
		ae := AppendEvent{AggregateID: string(ev.Record.Key), Value: ev.Record.Value, Headers: hs}
		if ev.Expected >= 0 {
			ae.ExpectedVersion = &ev.Expected
		}
		req.Events[i] = ae
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: encode append: %v", ErrRefused, err)
	}
	wait := c.cfg.Backoff
	for attempt := 1; ; attempt++ {
		out, retryAfter, err := c.send(ctx, events, body)
		if err == nil || !Transient(err) || attempt >= c.cfg.Attempts || ctx.Err() != nil {
			c.count(out, err)
			return out, err
		}
		c.retries.Inc()
		d := wait
		if retryAfter > 0 {
			d = min(retryAfter, maxClientBackoff)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			c.count(nil, err)
			return nil, fmt.Errorf("%w (giving up: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxClientBackoff)
	}
}

func (c *Client) count(out []Appended, err error) {
	outcome := "written"
	switch {
	case errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrIDConflict):
		outcome = "conflict"
	case errors.Is(err, ErrRefused):
		outcome = "refused"
	case err != nil:
		outcome = "unavailable"
	case len(out) > 0 && out[0].Duplicate:
		outcome = "duplicate"
	}
	c.appends.WithLabelValues(outcome).Inc()
}

// answer is the 201 body of the append route.
type answer struct {
	Events []struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		AggregateID string `json:"aggregateId"`
		Topic       string `json:"topic"`
		Partition   int32  `json:"partition"`
		Offset      int64  `json:"offset"`
		SchemaID    int    `json:"schemaId"`
		Version     int64  `json:"version"`
	} `json:"events"`
}

// problemDoc is the part of an RFC 9457 problem the client reads.
type problemDoc struct {
	Type           string `json:"type"`
	Detail         string `json:"detail"`
	AggregateID    string `json:"aggregateId"`
	CurrentVersion *int64 `json:"currentVersion"`
	Errors         []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// send posts one attempt; a transient error (ErrUnavailable) may come with the answer's
// Retry-After.
func (c *Client) send(ctx context.Context, events []Pending, body []byte) ([]Appended, time.Duration, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.cfg.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.cfg.HTTPClient.Do(hreq)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: append to %s: %v", ErrUnavailable, c.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: append to %s: reading the answer: %v", ErrUnavailable, c.url, err)
	}
	if resp.StatusCode == http.StatusCreated {
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, 0, fmt.Errorf("%w: append to %s: the answer does not parse: %v", ErrUnavailable, c.url, err)
		}
		dup := resp.Header.Get("Idempotent-Replayed") == "true"
		out := make([]Appended, len(a.Events))
		for i, e := range a.Events {
			out[i] = Appended{ID: e.ID, Type: e.Type, AggregateID: e.AggregateID, Topic: e.Topic, Partition: e.Partition,
				Offset: e.Offset, Version: e.Version, SchemaID: e.SchemaID, Duplicate: dup}
		}
		return out, 0, nil
	}
	var p problemDoc
	_ = json.Unmarshal(raw, &p) // a body that is no problem document leaves p empty
	what := fmt.Sprintf("append to %s: %s", c.url, resp.Status)
	if p.Detail != "" {
		what += ": " + p.Detail
	}
	index := 0
	if len(p.Errors) > 0 {
		_, _ = fmt.Sscanf(p.Errors[0].Field, "events[%d]", &index)
	}
	switch {
	case resp.StatusCode == http.StatusConflict && p.CurrentVersion != nil:
		ce := &ConflictError{Index: index, AggregateID: p.AggregateID, Current: *p.CurrentVersion, Expected: -1}
		if index >= 0 && index < len(events) {
			ce.Expected = events[index].Expected
		}
		return nil, 0, ce
	case resp.StatusCode == http.StatusConflict:
		reason := what
		if len(p.Errors) > 0 {
			reason = p.Errors[0].Message
		}
		ie := &IDConflictError{Index: index, Reason: reason}
		if index >= 0 && index < len(events) {
			ie.ID = events[index].ID
		}
		return nil, 0, ie
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, time.Duration(secs) * time.Second, fmt.Errorf("%w: %s", ErrUnavailable, what)
	default:
		return nil, 0, fmt.Errorf("%w: %s", ErrRefused, what)
	}
}
