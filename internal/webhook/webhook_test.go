package webhook_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/webhook"
)

func TestSign(t *testing.T) {
	// The Standard Webhooks reference test vector.
	key, err := webhook.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	hdr := func(id, ts, sig string) http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		body string
		now  time.Time
		ok   bool
	}{
		{"valid", hdr("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", want), string(body), ts, true},
		{"one of several signatures", hdr("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,Zm9v "+want), string(body), ts.Add(time.Minute), true},
		{"body changed", hdr("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", want), `{"test": 2432232315}`, ts, false},
		{"id changed", hdr("msg_other", "1614265330", want), string(body), ts, false},
		{"timestamp too old", hdr("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", want), string(body), ts.Add(6 * time.Minute), false},
		{"timestamp not a number", hdr("msg_p5jXN8AQM9LWM0D4loKWxJek", "soon", want), string(body), ts, false},
		{"headers missing", http.Header{}, string(body), ts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(key, tt.h, []byte(tt.body), 5*time.Minute, tt.now)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, webhook.ErrBadSignature)) {
				t.Errorf("Verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDecodeSecret(t *testing.T) {
	key := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name   string
		secret string
		ok     bool
	}{
		{"24 bytes", "whsec_" + key(24), true},
		{"64 bytes", "whsec_" + key(64), true},
		{"too short", "whsec_" + key(23), false},
		{"too long", "whsec_" + key(65), false},
		{"no prefix", key(32), false},
		{"not base64", "whsec_!!!", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.DecodeSecret(tt.secret)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, webhook.ErrBadSecret)) {
				t.Errorf("err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

const secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestParseSubscriptions(t *testing.T) {
	env := map[string]string{"HOOK_SECRET": secretA}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		json    string
		wantErr []string // substrings, every one must be reported
	}{
		{name: "valid", json: `[{"id":"crm","url":"https://crm.example/hook","events":["WorkEffort:*","work-effort.completed.v1"],"secret":"` + secretA + `"},
			{"id":"ops","url":"http://ops.local/x","events":["*"],"secretEnv":"HOOK_SECRET"}]`},
		{name: "every problem at once", json: `[{"id":"Bad ID","url":"ftp://x","events":[],"secret":"nope"},{"id":"x","url":"http://x","events":["WorkEffort:"],"secret":"` + secretA + `"}]`,
			wantErr: []string{`id "Bad ID"`, `url "ftp://x"`, "events is empty", "does not start with whsec_", "events[0]"}},
		{name: "duplicate id", json: `[{"id":"a","url":"http://x","events":["*"],"secret":"` + secretA + `"},{"id":"a","url":"http://y","events":["*"],"secret":"` + secretA + `"}]`,
			wantErr: []string{"used twice"}},
		{name: "secret and secretEnv", json: `[{"id":"a","url":"http://x","events":["*"],"secret":"` + secretA + `","secretEnv":"HOOK_SECRET"}]`, wantErr: []string{"not both"}},
		{name: "empty secretEnv", json: `[{"id":"a","url":"http://x","events":["*"],"secretEnv":"MISSING"}]`, wantErr: []string{"MISSING"}},
		{name: "unknown field", json: `[{"id":"a","url":"http://x","events":["*"],"secret":"` + secretA + `","retries":3}]`, wantErr: []string{"retries"}},
		{name: "not an array", json: `{"id":"a"}`, wantErr: []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, err := webhook.ParseSubscriptions([]byte(tt.json), getenv)
			if len(tt.wantErr) == 0 {
				if err != nil || len(subs) != 2 {
					t.Fatalf("%d subscriptions, err %v", len(subs), err)
				}
				return
			}
			if !errors.Is(err, webhook.ErrBadConfig) {
				t.Fatalf("err %v, want ErrBadConfig", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func FuzzParseSubscriptions(f *testing.F) {
	f.Add([]byte(`[{"id":"crm","url":"https://crm.example/hook","events":["WorkEffort:*"],"secret":"` + secretA + `"}]`))
	f.Add([]byte(`[{"id":"a","url":"http://x","events":["*:"],"secretEnv":"X"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		subs, err := webhook.ParseSubscriptions(data, func(string) string { return secretA })
		if err != nil {
			if !errors.Is(err, webhook.ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		if _, err := webhook.New(webhook.Config{Subscriptions: subs}, nil, nil, nil); err != nil && len(subs) > 0 {
			t.Fatalf("parsed subscriptions refused by New: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	key, _ := webhook.DecodeSecret(secretA)
	f.Add("msg_1", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{}`))
	f.Add("", "-9999999999999", "v1,", []byte(nil))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		err := webhook.Verify(key, h, body, 5*time.Minute, time.Unix(1614265330, 0))
		if err != nil && !errors.Is(err, webhook.ErrBadSignature) {
			t.Fatalf("error %v does not wrap ErrBadSignature", err)
		}
		if err == nil {
			sec, _ := strconv.ParseInt(ts, 10, 64)
			if !slices.Contains(strings.Fields(sig), webhook.Sign(key, id, time.Unix(sec, 0), body)) {
				t.Fatalf("accepted signature %q", sig)
			}
		}
	})
}

// subscriber is an httptest endpoint that verifies signatures and keeps what it accepted.
type subscriber struct {
	srv *httptest.Server
	key []byte

	mu       sync.Mutex
	status   int // answer with this (0: 204)
	failures int // answer 503 to the first attempts of each message
	delay    time.Duration
	attempts map[string][]attempt // by webhook-id
	ok       []delivery
}

type attempt struct {
	body   string
	status int
}

type delivery struct {
	id      string
	payload webhook.Payload
}

func newSubscriber(t *testing.T) *subscriber {
	key, _ := webhook.DecodeSecret(secretA)
	s := &subscriber{key: key, attempts: map[string][]attempt{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(s.key, r.Header, body, time.Minute, time.Now()); err != nil || r.Method != http.MethodPost ||
			r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad delivery: %s %v", r.Method, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		status, delay := s.status, s.delay
		id := r.Header.Get(webhook.HeaderID)
		if len(s.attempts[id]) < s.failures {
			status = http.StatusServiceUnavailable
		}
		if status == 0 {
			status = http.StatusNoContent
		}
		s.attempts[id] = append(s.attempts[id], attempt{body: string(body), status: status})
		if status < 300 {
			var p webhook.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Errorf("body: %v", err)
			}
			s.ok = append(s.ok, delivery{id: id, payload: p})
		}
		s.mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *subscriber) set(status, failures int) {
	s.mu.Lock()
	s.status, s.failures = status, failures
	s.mu.Unlock()
}

func (s *subscriber) delivered() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.ok...)
}

func (s *subscriber) waitDelivered(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := s.delivered()
		if len(d) >= n {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, want %d", len(d), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func webhookRunner(t *testing.T, e *reactortest.Env, subs string, attempts int) func(ctx context.Context) error {
	t.Helper()
	parsed, err := webhook.ParseSubscriptions([]byte(subs), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := webhook.New(webhook.Config{Subscriptions: parsed, Timeout: 5 * time.Second}, e.Store, e.Metrics, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New()
	if err := r.Subscribe(b); err != nil {
		t.Fatal(err)
	}
	run, err := e.Deps().BusRunner(webhook.Group, []string{reactortest.WorkEffortEvents}, b, reactortest.FastRetry(attempts))
	if err != nil {
		t.Fatal(err)
	}
	return run.Run
}

func sub(id, url string, events ...string) string {
	ev, _ := json.Marshal(events)
	return fmt.Sprintf(`{"id":%q,"url":%q,"events":%s,"secret":%q}`, id, url, ev, secretA)
}

func TestWebhookReactor(t *testing.T) {
	e := reactortest.New(t)
	a, b, c, d := newSubscriber(t), newSubscriber(t), newSubscriber(t), newSubscriber(t)
	b.set(0, 2)                              // two 503s, then success: retried while we-1 waits
	c.set(http.StatusInternalServerError, 0) // never succeeds: dead-lettered after 3 attempts
	d.set(http.StatusGone, 0)                // gone: dead-lettered at once
	subs := "[" + strings.Join([]string{
		sub("a", a.srv.URL, "WorkEffort:Completed"),
		sub("b", b.srv.URL+"/hook?token=x", "WorkEffort:*"),
		sub("c", c.srv.URL, "WorkEffort:Started"),
		sub("d", d.srv.URL, "*:Completed"),
	}, ",") + "]"
	started := e.Record(t, reactortest.WorkEffortEvents, "WorkEffort:Started", "we-1", 0, map[string]any{"title": "T", "startedAt": time.UnixMilli(1_700_000_000_000)})
	done := e.Record(t, reactortest.WorkEffortEvents, "WorkEffort:Completed", "we-1", 0, map[string]any{
		"title": "T", "completedAt": time.UnixMilli(1_700_000_100_000), "duration": int64(100_000), "ticketCount": 1, "assigneeEmail": nil})
	e.Produce(t, started, done)

	stop := reactortest.Start(t, webhookRunner(t, e, subs, 3))
	a.waitDelivered(t, 1)
	b.waitDelivered(t, 2)
	dlq := e.DLQ(t, webhook.Group, 2)
	stop()

	startedID, doneID := reactortest.Header(started, bus.HeaderID), reactortest.Header(done, bus.HeaderID)
	t.Run("payload and headers", func(t *testing.T) {
		got := a.delivered()[0]
		if got.id != webhook.MessageID("a", doneID) || got.payload.Type != "WorkEffort:Completed" || got.payload.ID != doneID ||
			got.payload.AggregateID != "we-1" || got.payload.Data["title"] != "T" || got.payload.Data["ticketCount"] != float64(1) {
			t.Errorf("delivery %+v", got)
		}
	})
	t.Run("retries keep the webhook-id and body", func(t *testing.T) {
		b.mu.Lock()
		defer b.mu.Unlock()
		tries := b.attempts[webhook.MessageID("b", startedID)]
		if len(tries) != 3 || tries[0].status != 503 || tries[2].status != 204 || tries[0].body != tries[2].body {
			t.Errorf("attempts %+v, want 503, 503, 204 with one body", tries)
		}
		// The retries happened in place, with we-1 parked: b got Started (after its 503s)
		// before Completed, which waited behind it.
		if n := e.Count(t, "pyrite.webhooks.retry"); n != 0 {
			t.Errorf("retry topic holds %d records, want 0", n)
		}
		var order []string
		for _, d := range b.ok {
			order = append(order, d.payload.Type)
		}
		if fmt.Sprint(order) != "[WorkEffort:Started WorkEffort:Completed]" {
			t.Errorf("b received %v, want Started before Completed", order)
		}
	})
	t.Run("failures reach the dead-letter topic", func(t *testing.T) {
		got := map[string]string{}
		for _, r := range dlq {
			got[reactortest.Header(r, bus.HeaderDLQHandler)] = reactortest.Header(r, bus.HeaderDLQReason) + "/" + reactortest.Header(r, bus.HeaderDLQAttempts)
			if strings.Contains(reactortest.Header(r, bus.HeaderDLQError), "token=x") {
				t.Errorf("dead letter leaks the URL's query: %s", reactortest.Header(r, bus.HeaderDLQError))
			}
		}
		want := map[string]string{"webhook-c": "exhausted/3", "webhook-d": "permanent/1"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("dead letters %v, want %v", got, want)
		}
	})
	t.Run("redelivery posts nothing twice", func(t *testing.T) {
		e.Rewind(t, webhook.Group, reactortest.WorkEffortEvents)
		stop := reactortest.Start(t, webhookRunner(t, e, subs, 3))
		e.WaitCommitted(t, webhook.Group, reactortest.WorkEffortEvents)
		e.Stable(t, 300*time.Millisecond, "pyrite.webhooks.retry")
		stop()
		if n, m := len(a.delivered()), len(b.delivered()); n != 1 || m != 2 {
			t.Errorf("a got %d, b got %d deliveries after the redelivery, want 1 and 2", n, m)
		}
	})
}

// TestWebhooksStopMidStream stops the reactor in the middle of a burst and rewinds it each
// time: every event is delivered exactly once.
func TestWebhooksStopMidStream(t *testing.T) {
	e := reactortest.New(t)
	s := newSubscriber(t)
	s.delay = 3 * time.Millisecond
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, e.Record(t, reactortest.WorkEffortEvents, "WorkEffort:ProgressUpdated", fmt.Sprintf("we-%d", i%7), 0,
			map[string]any{"oldProgress": i, "newProgress": i + 1, "delta": 1, "formatted": "x"}))
	}
	e.Produce(t, recs...)
	subs := "[" + sub("s", s.srv.URL, "WorkEffort:ProgressUpdated") + "]"
	for _, at := range []int{8, 20, 33} {
		stop := reactortest.Start(t, webhookRunner(t, e, subs, 3))
		s.waitDelivered(t, at)
		stop()
		e.Rewind(t, webhook.Group, reactortest.WorkEffortEvents)
	}
	stop := reactortest.Start(t, webhookRunner(t, e, subs, 3))
	s.waitDelivered(t, 40)
	e.WaitCommitted(t, webhook.Group, reactortest.WorkEffortEvents)
	stop()
	var ids []string
	for _, d := range s.delivered() {
		ids = append(ids, d.id)
	}
	if len(ids) != 40 || reactortest.Unique(ids) != "" {
		t.Errorf("%d deliveries (repeated %q), want 40 distinct", len(ids), reactortest.Unique(ids))
	}
}

func TestSubscriptionSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(path, []byte(secretA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	subs, err := webhook.ParseSubscriptions([]byte(`[{"id":"a","url":"http://x","events":["*"],"secretFile":"`+path+`"}]`), nil)
	if err != nil || len(subs) != 1 {
		t.Fatalf("secretFile: %d subscriptions, %v", len(subs), err)
	}
	_, err = webhook.ParseSubscriptions([]byte(`[{"id":"a","url":"http://x","events":["*"],"secretFile":"`+filepath.Join(dir, "missing")+`"}]`), nil)
	if !errors.Is(err, webhook.ErrBadConfig) || !strings.Contains(err.Error(), "secretFile") {
		t.Fatalf("missing secretFile: %v", err)
	}
	_, err = webhook.ParseSubscriptions([]byte(`[{"id":"a","url":"http://x","events":["*"],"secret":"`+secretA+`","secretFile":"`+path+`"}]`), nil)
	if err == nil || strings.Contains(err.Error(), secretA) {
		t.Fatalf("secret and secretFile: %v (must fail without showing the secret)", err)
	}
}
