package reactor_test

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
)

// mailServer is a real SMTP server (go-smtp) that keeps what it receives.
type mailServer struct {
	addr string
	user string
	pass string

	mu       sync.Mutex
	msgs     []received
	reject   map[string]bool // recipients refused with 550
	tempFail int             // refuse this many DATA commands with 451 first
	delay    time.Duration   // before accepting DATA
}

type received struct {
	from, to string
	msg      *mail.Message
	body     string
}

func startMailServer(t *testing.T) *mailServer {
	t.Helper()
	ms := &mailServer{user: "pyrite", pass: "s3cret", reject: map[string]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mailSession{ms: ms}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ms
}

func (ms *mailServer) config(t *testing.T) reactor.SMTPConfig {
	host, port, _ := net.SplitHostPort(ms.addr)
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return reactor.SMTPConfig{Host: host, Port: p, Username: ms.user, Password: ms.pass,
		From: "Pyrite <pyrite@example.com>", TLS: reactor.TLSNone, Timeout: 5 * time.Second}
}

func (ms *mailServer) received() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.msgs...)
}

func (ms *mailServer) waitFor(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := ms.received()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d emails received, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type mailSession struct {
	ms       *mailServer
	authed   bool
	from, to string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.ms.user || pass != s.ms.pass {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.ms.mu.Lock()
	defer s.ms.mu.Unlock()
	if s.ms.reject[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.to = to
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ms.mu.Lock()
	delay := s.ms.delay
	if s.ms.tempFail > 0 {
		s.ms.tempFail--
		s.ms.mu.Unlock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.ms.mu.Unlock()
	time.Sleep(delay)
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	s.ms.mu.Lock()
	s.ms.msgs = append(s.ms.msgs, received{from: s.from, to: s.to, msg: m, body: string(body)})
	s.ms.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

func completed(e *reactortest.Env, t *testing.T, id, title string, assignee any) *kgo.Record {
	return e.Record(t, reactortest.WorkEffortEvents, "WorkEffort:Completed", id, 0, map[string]any{
		"title": title, "completedAt": time.UnixMilli(1_700_000_000_000).UTC(), "duration": int64(60_000),
		"ticketCount": 2, "assigneeEmail": assignee,
	})
}

func notificationRunner(t *testing.T, e *reactortest.Env, cfg reactor.SMTPConfig) func(ctx context.Context) error {
	t.Helper()
	n, err := reactor.NewNotifier(cfg, e.Store, e.Metrics, nil, workeffort.Notifications()...)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New()
	if err := n.Subscribe(b); err != nil {
		t.Fatal(err)
	}
	r, err := e.Deps().BusRunner(reactor.NotificationsGroup, []string{reactortest.WorkEffortEvents}, b, reactortest.FastRetry(3))
	if err != nil {
		t.Fatal(err)
	}
	return r.Run
}

func TestNotificationReactor(t *testing.T) {
	e := reactortest.New(t)
	ms := startMailServer(t)
	ms.reject["gone@example.com"] = true
	ms.tempFail = 1 // the first delivery meets a 451 and is retried (in place: its key waits)
	e.Produce(t,
		completed(e, t, "we-1", "Ship the API ✓", "ada@example.com"),
		completed(e, t, "we-2", "Unassigned", nil),
		completed(e, t, "we-3", "Bad address", "not an address"),
		completed(e, t, "we-4", "Rejected", "gone@example.com"),
	)
	cfg := ms.config(t)
	stop := reactortest.Start(t, notificationRunner(t, e, cfg))
	got := ms.waitFor(t, 1)
	dlq := e.DLQ(t, reactor.NotificationsGroup, 2)
	e.WaitCommitted(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
	stop()

	t.Run("the email", func(t *testing.T) {
		m := got[0]
		dec := new(mime.WordDecoder)
		subject, _ := dec.DecodeHeader(m.msg.Header.Get("Subject"))
		tests := []struct{ name, got, want string }{
			{"envelope from", m.from, "pyrite@example.com"},
			{"envelope to", m.to, "ada@example.com"},
			{"To", m.msg.Header.Get("To"), "<ada@example.com>"},
			{"From", m.msg.Header.Get("From"), `"Pyrite" <pyrite@example.com>`},
			{"Subject", subject, "Work effort completed: Ship the API ✓"},
			{"body", strings.TrimSpace(decodeQP(t, m.body)), "Ship the API ✓ has been completed!"},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
			}
		}
		if id := m.msg.Header.Get("Message-ID"); !strings.HasSuffix(id, "@pyrite.notifications>") {
			t.Errorf("Message-ID %q", id)
		}
	})
	t.Run("a 451 is retried in place, its key parked meanwhile", func(t *testing.T) {
		// The email above is that retry's; nothing went through the retry topic.
		if n := e.Count(t, "pyrite.notifications.retry"); n != 0 {
			t.Errorf("retry topic holds %d records, want 0", n)
		}
	})
	t.Run("bad address and refused recipient are dead-lettered", func(t *testing.T) {
		keys := map[string]string{}
		for _, r := range dlq {
			keys[string(r.Key)] = reactortest.Header(r, bus.HeaderDLQReason)
		}
		if keys["we-3"] != bus.ReasonPermanent || keys["we-4"] != bus.ReasonPermanent || len(keys) != 2 {
			t.Errorf("dead letters %v, want we-3 and we-4 permanent", keys)
		}
	})
	t.Run("redelivery sends nothing twice", func(t *testing.T) {
		// A crash that lost the group's commits: every record comes again.
		e.Rewind(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
		e.Produce(t, completed(e, t, "we-5", "After the restart", "bob@example.com"))
		stop := reactortest.Start(t, notificationRunner(t, e, cfg))
		ms.waitFor(t, 2)
		e.WaitCommitted(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
		stop()
		got := ms.received()
		if len(got) != 2 || got[0].to != "ada@example.com" || got[1].to != "bob@example.com" {
			t.Errorf("emails to %v, want ada then bob once each", recipients(got))
		}
	})
}

// TestNotificationsStopMidStream stops and restarts the reactor while a burst of events is
// being mailed, and rewinds the group each time: every assignee gets exactly one email.
func TestNotificationsStopMidStream(t *testing.T) {
	e := reactortest.New(t)
	ms := startMailServer(t)
	ms.delay = 5 * time.Millisecond
	const n = 30
	var recs []*kgo.Record
	for i := range n {
		id := "we-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		recs = append(recs, completed(e, t, id, "T "+id, id+"@example.com"))
	}
	e.Produce(t, recs...)
	cfg := ms.config(t)
	for round, at := range []int{5, 15, 25} {
		stop := reactortest.Start(t, notificationRunner(t, e, cfg))
		ms.waitFor(t, at)
		stop()
		e.Rewind(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
		t.Logf("round %d stopped after %d emails", round, len(ms.received()))
	}
	stop := reactortest.Start(t, notificationRunner(t, e, cfg))
	ms.waitFor(t, n)
	e.WaitCommitted(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
	stop()
	got := recipients(ms.received())
	if len(got) != n || reactortest.Unique(got) != "" {
		t.Errorf("%d emails (repeated: %q), want %d distinct", len(got), reactortest.Unique(got), n)
	}
}

func recipients(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.to)
	}
	return out
}

func decodeQP(t *testing.T, s string) string {
	t.Helper()
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
