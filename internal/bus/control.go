package bus

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Control headers a Runner writes on retry, queue and dead-letter records. Together with the
// record's original key, value and headers they say where the record came from and why it
// is there.
const (
	// HeaderRetryAttempt is the number of deliveries already made (0 for a queued delivery
	// of async handlers), decimal.
	HeaderRetryAttempt = "pyrite-retry-attempt"
	// HeaderRetryNotBefore is the earliest time of the next delivery, RFC 3339 (UTC).
	HeaderRetryNotBefore = "pyrite-retry-not-before"
	// HeaderRetryHandlers lists the handlers to deliver to, comma-separated; absent or empty
	// means every matching handler.
	HeaderRetryHandlers = "pyrite-retry-handlers"
	// HeaderRetryError is the last failure's message (for people; truncated).
	HeaderRetryError = "pyrite-retry-error"

	// HeaderDLQReason is one of the Reason* values.
	HeaderDLQReason = "pyrite-dlq-reason"
	// HeaderDLQAttempts is the number of deliveries made, decimal (0 when none could be).
	HeaderDLQAttempts = "pyrite-dlq-attempts"
	// HeaderDLQHandler lists the failing handlers, comma-separated; empty when the failure
	// was not a handler's (decode, rejected by middleware).
	HeaderDLQHandler = "pyrite-dlq-handler"
	// HeaderDLQError is the failure's message (for people; truncated).
	HeaderDLQError = "pyrite-dlq-error"
	// HeaderDLQGroup is the consumer group that gave up.
	HeaderDLQGroup = "pyrite-dlq-group"
	// HeaderDLQTime is when the record was dead-lettered, RFC 3339 (UTC).
	HeaderDLQTime = "pyrite-dlq-time"

	// HeaderOriginTopic, HeaderOriginPartition and HeaderOriginOffset locate the original
	// record (not the retry record it was redelivered from).
	HeaderOriginTopic     = "pyrite-origin-topic"
	HeaderOriginPartition = "pyrite-origin-partition"
	HeaderOriginOffset    = "pyrite-origin-offset"

	// HeaderDLQHoldsKey ("true") marks a dead letter that holds its key: until it is redriven
	// or skipped, later records of the key in the group are dead-lettered behind it (reason
	// parked). Runners with a RetryTopic and a Bus write it on dead letters of keyed records
	// (see the package comment).
	HeaderDLQHoldsKey = "pyrite-dlq-holds-key"
	// HeaderDLQRedrivenOffset and HeaderDLQSkippedOffset are on marker records on a DLQ (no
	// value, the dead letter's key, same partition): the offset of the dead letter redriven
	// (pyrite dlq redrive) or skipped (pyrite dlq skip). A marked dead letter is no longer
	// pending.
	HeaderDLQRedrivenOffset = "pyrite-dlq-redriven-offset"
	HeaderDLQSkippedOffset  = "pyrite-dlq-skipped-offset"
	// HeaderRedrivenFrom is on records pyrite dlq redrive writes to a retry topic:
	// <dlq topic>[<partition>]@<offset> of the dead letter. It is not a control header, so a
	// record that fails again carries it into the DLQ.
	HeaderRedrivenFrom = "pyrite-redriven-from"
	// HeaderRetryRelease is on a record pyrite dlq skip writes to a group's retry topic, with
	// the skipped dead letter's key and origin headers and no value: the group releases one
	// dead letter's hold on the key and delivers nothing. Its value names the dead letter.
	HeaderRetryRelease = "pyrite-retry-release"
)

// Dead-letter reasons (HeaderDLQReason; the "reason" label of pyrite_runner_dlq_total).
const (
	// ReasonDecode: the record (or its control headers) could not be decoded.
	ReasonDecode = "decode"
	// ReasonRejected: a middleware rejected the event with a permanent error.
	ReasonRejected = "rejected"
	// ReasonPermanent: a handler failed with a permanent error.
	ReasonPermanent = "permanent"
	// ReasonExhausted: a handler failed transiently on the last allowed attempt.
	ReasonExhausted = "exhausted"
	// ReasonParked: the record was not delivered because an earlier dead letter of its key
	// holds the key (HeaderDLQHoldsKey); it waits in the DLQ, in order, to be redriven
	// behind it (or skipped).
	ReasonParked = "parked"
)

// maxErrorHeader bounds the error text copied into a header.
const maxErrorHeader = 1024

// origin locates a record.
type origin struct {
	topic     string
	partition int32
	offset    int64
}

func originOf(r *kgo.Record) origin { return origin{r.Topic, r.Partition, r.Offset} }

// control is what a retry or queue record's headers say.
type control struct {
	attempt   int
	notBefore time.Time
	handlers  []string // nil: every matching handler
	origin    origin
}

// parseControl reads the control headers of a retry or queue record. Attempt, not-before and
// the origin are required; every problem is reported, joined, each wrapping ErrBadHeader.
// When a key repeats the last value wins.
func parseControl(hs []kgo.RecordHeader) (control, error) {
	var (
		c    control
		errs []error
	)
	bad := func(k, v, why string) {
		errs = append(errs, fmt.Errorf("%w: %s %q: %s", ErrBadHeader, k, truncate(v, 64), why))
	}
	for _, h := range hs {
		v := string(h.Value)
		switch h.Key {
		case HeaderRetryAttempt:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				bad(h.Key, v, "not a count")
				continue
			}
			c.attempt = n
		case HeaderRetryNotBefore:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad(h.Key, v, "not RFC 3339")
				continue
			}
			c.notBefore = t
		case HeaderRetryHandlers:
			c.handlers = splitNames(v)
		case HeaderOriginTopic:
			if v == "" {
				bad(h.Key, v, "empty")
				continue
			}
			c.origin.topic = v
		case HeaderOriginPartition:
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				bad(h.Key, v, "not a partition")
				continue
			}
			c.origin.partition = int32(n)
		case HeaderOriginOffset:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				bad(h.Key, v, "not an offset")
				continue
			}
			c.origin.offset = n
		}
	}
	for _, k := range []string{HeaderRetryAttempt, HeaderRetryNotBefore, HeaderOriginTopic,
		HeaderOriginPartition, HeaderOriginOffset} {
		if !hasHeader(hs, k) {
			errs = append(errs, fmt.Errorf("%w: %s missing", ErrBadHeader, k))
		}
	}
	return c, errors.Join(errs...)
}

func hasHeader(hs []kgo.RecordHeader, k string) bool {
	for _, h := range hs {
		if h.Key == k {
			return true
		}
	}
	return false
}

// splitNames splits a comma-separated handler list; "" gives nil (every handler).
func splitNames(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// isControlHeader reports whether k is one of the runner's own headers.
func isControlHeader(k string) bool {
	return strings.HasPrefix(k, "pyrite-retry-") || strings.HasPrefix(k, "pyrite-dlq-") ||
		strings.HasPrefix(k, "pyrite-origin-")
}

// stripControl returns hs without the runner's control headers, in a new slice.
func stripControl(hs []kgo.RecordHeader) []kgo.RecordHeader {
	i := slices.IndexFunc(hs, func(h kgo.RecordHeader) bool { return isControlHeader(h.Key) })
	if i < 0 {
		return slices.Clip(hs) // nothing to strip (a source record): shared, and an append copies
	}
	out := make([]kgo.RecordHeader, i, len(hs))
	copy(out, hs[:i])
	for _, h := range hs[i+1:] {
		if !isControlHeader(h.Key) {
			out = append(out, h)
		}
	}
	return out
}

func header(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

func originHeaders(o origin) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		header(HeaderOriginTopic, o.topic),
		header(HeaderOriginPartition, strconv.Itoa(int(o.partition))),
		header(HeaderOriginOffset, strconv.FormatInt(o.offset, 10)),
	}
}

// retryRecord is rec, for topic, with control headers asking for delivery number attempt+1
// to handlers (nil: all) not before notBefore.
func retryRecord(topic string, rec *kgo.Record, o origin, attempt int, handlers []string, notBefore time.Time, cause error) *kgo.Record {
	hs := stripControl(rec.Headers)
	hs = append(hs,
		header(HeaderRetryAttempt, strconv.Itoa(attempt)),
		header(HeaderRetryNotBefore, notBefore.UTC().Format(time.RFC3339Nano)),
		header(HeaderRetryHandlers, strings.Join(handlers, ",")),
	)
	if cause != nil {
		hs = append(hs, header(HeaderRetryError, truncate(cause.Error(), maxErrorHeader)))
	}
	hs = append(hs, originHeaders(o)...)
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Headers: hs}
}

// dlqRecord is rec, for the dead-letter topic, with headers saying why.
func dlqRecord(topic, group string, rec *kgo.Record, o origin, reason string, attempts int, handlers []string, cause error, now time.Time) *kgo.Record {
	hs := stripControl(rec.Headers)
	msg := ""
	if cause != nil {
		msg = truncate(cause.Error(), maxErrorHeader)
	}
	hs = append(hs,
		header(HeaderDLQReason, reason),
		header(HeaderDLQAttempts, strconv.Itoa(attempts)),
		header(HeaderDLQHandler, strings.Join(handlers, ",")),
		header(HeaderDLQError, msg),
		header(HeaderDLQGroup, group),
		header(HeaderDLQTime, now.UTC().Format(time.RFC3339Nano)),
	)
	hs = append(hs, originHeaders(o)...)
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Headers: hs}
}
