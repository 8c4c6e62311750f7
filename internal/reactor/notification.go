package reactor

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// NotificationsGroup is the notification reactor's consumer group (topology group).
const NotificationsGroup = "notifications"

// SMTP security modes (SMTPConfig.TLS).
const (
	// TLSStartTLS upgrades the connection with STARTTLS when the server offers it; it is
	// required when credentials are set and the server is not on the loopback interface.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "implicit"
	// TLSNone never uses TLS (a local relay).
	TLSNone = "none"
)

// SMTPConfig says how the notification reactor sends email. The reactor is off when Host is
// empty.
type SMTPConfig struct {
	// Host and Port of the SMTP server; Port defaults to 587 (465 with TLSImplicit).
	Host string
	Port int
	// Username and Password, when Username is set, authenticate with AUTH PLAIN.
	Username string
	Password string
	// From is the sender address, e.g. "Pyrite <pyrite@example.com>".
	From string
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS string
	// Timeout bounds one delivery (connect to QUIT); default 30s.
	Timeout time.Duration
	// TLSConfig, when set, is used for TLS (ServerName defaults to Host), e.g. for a private CA.
	TLSConfig *tls.Config
}

// Enabled reports whether email is configured.
func (c SMTPConfig) Enabled() bool { return c.Host != "" }

// Validate reports every problem of an enabled configuration, joined.
func (c SMTPConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp port %d is not a port", c.Port))
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("smtp sender %q: %w", c.From, err))
	}
	switch c.TLS {
	case "", TLSStartTLS, TLSImplicit, TLSNone:
	default:
		errs = append(errs, fmt.Errorf("smtp tls %q: want %s, %s or %s", c.TLS, TLSStartTLS, TLSImplicit, TLSNone))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("smtp password without a username"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("smtp timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Notification is one email a domain module sends on one event type
// (domain.Module.Notifications).
type Notification struct {
	// On is the event type ("WorkEffort:Completed").
	On string
	// Handler names the bus handler ("notification-email"); its deduplication records are
	// kept under "notifications/<Handler without its notification- prefix>".
	Handler string
	// Email returns the recipient's address (empty: no email), the subject and the plain-text
	// body of the email about ev.
	Email func(ev *bus.Event) (to, subject, body string)
}

func (r Notification) consumer() string {
	return "notifications/" + strings.TrimPrefix(r.Handler, "notification-")
}

// Notifier is the notification reactor (the seed's NotificationReactor): for each of its
// rules it emails the rule's recipient about the rule's event. At least once, deduplicated
// by the event's ce_id in the store; the Message-ID is derived from the ce_id, so a repeat
// after a crash between sending and recording carries the same Message-ID. SMTP 5xx replies
// and bad addresses are permanent (dead-lettered at once); other failures are retried.
type Notifier struct {
	cfg     SMTPConfig
	from    *mail.Address
	st      *store.Store
	metrics *Metrics
	log     *slog.Logger
	rules   []Notification
}

// NewNotifier checks cfg (which must be enabled) and returns the reactor of rules.
func NewNotifier(cfg SMTPConfig, st *store.Store, m *Metrics, log *slog.Logger, rules ...Notification) (*Notifier, error) {
	if !cfg.Enabled() {
		return nil, errors.New("reactor: notifications: no SMTP host")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reactor: notifications: %w", err)
	}
	cfg.TLS = cmp.Or(cfg.TLS, TLSStartTLS)
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == TLSImplicit {
			cfg.Port = 465
		}
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 30*time.Second)
	from, _ := mail.ParseAddress(cfg.From)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg, from: from, st: st, metrics: m, log: log, rules: rules}, nil
}

// Subscribe registers one handler per rule (named by the rule) on b.
func (n *Notifier) Subscribe(b *bus.Bus) error {
	for _, r := range n.rules {
		if _, err := b.On(r.On, func(ctx context.Context, ev *bus.Event) error { return n.handle(ctx, r, ev) },
			bus.Options{Name: r.Handler}); err != nil {
			return err
		}
	}
	return nil
}

// handle sends r's email about one event.
func (n *Notifier) handle(ctx context.Context, r Notification, ev *bus.Event) error {
	to, subject, body := r.Email(ev)
	if strings.TrimSpace(to) == "" {
		return nil
	}
	consumer := r.consumer()
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		n.metrics.effect(consumer, "email", "error", 1)
		return bus.Permanent(fmt.Errorf("notification for %s: recipient address %q: %w", ev.AggregateID, to, err))
	}
	msg := n.Message(ev, r.Handler, rcpt, subject, body)
	ran, err := Once(ctx, n.st, consumer, ev, func(ctx context.Context) error {
		return n.send(ctx, rcpt, msg)
	})
	switch {
	case err != nil:
		n.metrics.effect(consumer, "email", "error", 1)
		return fmt.Errorf("notification for %s to %s: %w", ev.AggregateID, rcpt.Address, err)
	case !ran:
		n.metrics.effect(consumer, "email", "duplicate", 1)
	default:
		n.metrics.effect(consumer, "email", "ok", 1)
	}
	return nil
}

// MessageID returns the Message-ID of the email handler sends about event eventID.
func MessageID(handler, eventID string) string {
	return "<" + EventID(eventID, handler) + "@pyrite.notifications>"
}

// Message returns the email handler sends to to about ev, with subject and a plain-text body.
func (n *Notifier) Message(ev *bus.Event, handler string, to *mail.Address, subject, body string) []byte {
	var b bytes.Buffer
	date := ev.Time
	if date.IsZero() {
		date = time.Now()
	}
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", n.from.String())
	hdr("To", to.String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("Message-ID", MessageID(handler, ev.ID))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(body))
	_ = qp.Close()
	return b.Bytes()
}

// send delivers msg to rcpt in one SMTP session, bounded by the timeout and ctx.
func (n *Notifier) send(ctx context.Context, rcpt *mail.Address, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.Port))
	tlsCfg := &tls.Config{ServerName: n.cfg.Host, MinVersion: tls.VersionTLS12}
	if n.cfg.TLSConfig != nil {
		tlsCfg = n.cfg.TLSConfig.Clone()
		if tlsCfg.ServerName == "" {
			tlsCfg.ServerName = n.cfg.Host
		}
	}
	var (
		conn net.Conn
		err  error
	)
	if n.cfg.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{Config: tlsCfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("smtp: connect %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, n.cfg.Host)
	if err != nil {
		return smtpErr("greeting", err)
	}
	defer c.Close()
	if n.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsCfg); err != nil {
				return smtpErr("STARTTLS", err)
			}
		}
	}
	if n.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return bus.Permanent(errors.New("smtp: credentials are set but the server offers no AUTH"))
		}
		if err := c.Auth(smtp.PlainAuth("", n.cfg.Username, n.cfg.Password, n.cfg.Host)); err != nil {
			return smtpErr("AUTH", err)
		}
	}
	if err := c.Mail(n.from.Address); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return smtpErr("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("end of DATA", err)
	}
	// The message is accepted; a failed QUIT does not make it undelivered.
	_ = c.Quit()
	return nil
}

// smtpErr names the SMTP step; a 5xx reply is permanent.
func smtpErr(step string, err error) error {
	err = fmt.Errorf("smtp: %s: %w", step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return bus.Permanent(err)
	}
	return err
}
