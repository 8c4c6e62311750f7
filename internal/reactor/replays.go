package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// ErrBadReplay means a pyrite.replays record is malformed (see ParseReplay).
var ErrBadReplay = errors.New("reactor: bad replay record")

// Replay is one record of pyrite.replays: before moving a group's offsets back, the
// operator's `pyrite replay` records, per partition, the group's committed offset (Until).
// Records of that partition below Until were handled before the replay began.
type Replay struct {
	Group     string    `json:"group"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Until     int64     `json:"until"`
	At        time.Time `json:"at"`
}

// ReplayKey is the record key of a replay mark: "<group>/<topic>/<partition>".
func ReplayKey(group, topic string, partition int32) string {
	return group + "/" + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// Record returns r as a pyrite.replays record (key and JSON value).
func (r Replay) Record() *kgo.Record {
	v, _ := json.Marshal(r) // plain fields: cannot fail
	return &kgo.Record{Topic: topology.ReplaysTopic, Key: []byte(ReplayKey(r.Group, r.Topic, r.Partition)), Value: v}
}

// ParseReplay parses a pyrite.replays record. A nil value is a tombstone: the mark of key is
// removed (ok true, r holds the group, topic and partition of the key and Until -1). Every
// problem wraps ErrBadReplay: a key that is not group/topic/partition, a value that is not
// the JSON object, fields that contradict the key, a negative until.
func ParseReplay(key, value []byte) (r Replay, err error) {
	k := string(key)
	last := strings.LastIndexByte(k, '/')
	first := strings.IndexByte(k, '/')
	if first <= 0 || last == first || last == len(k)-1 {
		return Replay{}, fmt.Errorf("%w: key %q is not <group>/<topic>/<partition>", ErrBadReplay, truncate(k, 80))
	}
	p, err := strconv.ParseInt(k[last+1:], 10, 32)
	if err != nil || p < 0 {
		return Replay{}, fmt.Errorf("%w: key %q: bad partition", ErrBadReplay, truncate(k, 80))
	}
	keyed := Replay{Group: k[:first], Topic: k[first+1 : last], Partition: int32(p), Until: -1}
	if value == nil {
		return keyed, nil
	}
	var raw struct {
		Group     *string    `json:"group"`
		Topic     *string    `json:"topic"`
		Partition *int32     `json:"partition"`
		Until     *int64     `json:"until"`
		At        *time.Time `json:"at"`
	}
	if err := json.Unmarshal(value, &raw); err != nil {
		return Replay{}, fmt.Errorf("%w: %s: value: %v", ErrBadReplay, truncate(k, 80), err)
	}
	var errs []error
	if raw.Group == nil || raw.Topic == nil || raw.Partition == nil || raw.Until == nil {
		errs = append(errs, errors.New("group, topic, partition and until are required"))
	} else {
		if *raw.Group != keyed.Group || *raw.Topic != keyed.Topic || *raw.Partition != keyed.Partition {
			errs = append(errs, errors.New("value names another group/topic/partition than the key"))
		}
		if *raw.Until < 0 {
			errs = append(errs, errors.New("until is negative"))
		}
	}
	if len(errs) > 0 {
		return Replay{}, fmt.Errorf("%w: %s: %w", ErrBadReplay, truncate(k, 80), errors.Join(errs...))
	}
	keyed.Until = *raw.Until
	if raw.At != nil {
		keyed.At = *raw.At
	}
	return keyed, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Replays knows, from pyrite.replays, where replays began. Run follows the topic; Ready is
// closed once Run has read what the topic held when it started. Until and Suppressed answer
// from what was read so far. It is safe for concurrent use.
type Replays struct {
	log *slog.Logger
	// Idle is how long Run waits for more records below the end offsets it listed before
	// it calls itself caught up anyway (trailing transaction markers are never delivered).
	// Default 1s.
	Idle time.Duration

	mu    sync.RWMutex
	until map[string]int64

	readyOnce sync.Once
	ready     chan struct{}
}

// NewReplays returns an empty Replays; log receives malformed records (nil: nowhere).
func NewReplays(log *slog.Logger) *Replays {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replays{log: log, Idle: time.Second, until: map[string]int64{}, ready: make(chan struct{})}
}

// Ready is closed once the marks present when Run started are known.
func (r *Replays) Ready() <-chan struct{} { return r.ready }

// Wait blocks until Ready or ctx ends (then ctx's error).
func (r *Replays) Wait(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Replays) markReady() { r.readyOnce.Do(func() { close(r.ready) }) }

// Apply records one mark (Until -1 removes it). Run calls it; tests may too.
func (r *Replays) Apply(rp Replay) {
	k := ReplayKey(rp.Group, rp.Topic, rp.Partition)
	r.mu.Lock()
	defer r.mu.Unlock()
	if rp.Until < 0 {
		delete(r.until, k)
		return
	}
	r.until[k] = rp.Until
}

// Until returns the offset where the last replay of group on topic/partition began, or -1.
func (r *Replays) Until(group, topic string, partition int32) int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if u, ok := r.until[ReplayKey(group, topic, partition)]; ok {
		return u
	}
	return -1
}

// Suppressed reports whether group handled ev's record before a replay began: the record's
// offset (of the original record, for a redelivery from the retry topic) is below the mark
// of its partition. A nil Replays or an event without origin suppresses nothing.
func (r *Replays) Suppressed(group string, ev *bus.Event) bool {
	if r == nil || ev == nil || ev.Origin == nil {
		return false
	}
	o := ev.Origin
	return o.Offset < r.Until(group, o.Topic, o.Partition)
}

// Keep is a filter for bus.Bus.UseFilter that drops (bus.ErrDropped: the record is marked
// done, counted as dropped) every event Suppressed for group, so no handler of a reactor fires
// again during a replay.
func (r *Replays) Keep(group string) func(*bus.Event) bool {
	return func(ev *bus.Event) bool { return !r.Suppressed(group, ev) }
}

// Run reads pyrite.replays from its start with a client made from opts (at least
// kgo.SeedBrokers) until ctx ends, applying every mark; it returns nil when ctx ends. Ready
// is closed once it read up to the end offsets the topic had when Run started (at once if
// the topic does not exist: no replay was ever recorded). Malformed records are logged and
// skipped.
func (r *Replays) Run(ctx context.Context, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumeTopics(topology.ReplaysTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, opts...)...)
	if err != nil {
		return fmt.Errorf("reactor: replays: client: %w", err)
	}
	defer cl.Close()
	ends, err := r.endOffsets(ctx, kadm.NewClient(cl))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if len(ends) == 0 {
		r.markReady()
	}
	lastRecord := time.Now()
	idle := time.NewTicker(max(r.Idle/4, 10*time.Millisecond))
	defer idle.Stop()
	polled := make(chan kgo.Fetches)
	go func() {
		defer close(polled)
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			select {
			case polled <- fs:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			for range polled {
			}
			return nil
		case <-idle.C:
			if len(ends) > 0 && time.Since(lastRecord) >= r.Idle {
				r.log.Warn("reactor: replays: calling pyrite.replays read after an idle wait", "behind", ends)
				ends = nil
				r.markReady()
			}
		case fs, ok := <-polled:
			if !ok {
				return nil
			}
			fs.EachError(func(t string, p int32, err error) {
				r.log.Warn("reactor: replays: fetch failed", "topic", t, "partition", p, "err", err)
			})
			fs.EachRecord(func(rec *kgo.Record) {
				lastRecord = time.Now()
				rp, err := ParseReplay(rec.Key, rec.Value)
				if err != nil {
					r.log.Error("reactor: replays: skipping malformed mark", "partition", rec.Partition, "offset", rec.Offset, "err", err)
				} else {
					r.Apply(rp)
				}
				if end, ok := ends[rec.Partition]; ok && rec.Offset+1 >= end {
					delete(ends, rec.Partition)
					if len(ends) == 0 {
						r.markReady()
					}
				}
			})
		}
	}
}

// endOffsets lists the non-empty partitions of pyrite.replays with their end offsets
// (empty when the topic does not exist), retrying until it can or ctx ends.
func (r *Replays) endOffsets(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	delay := 100 * time.Millisecond
	for {
		listed, err := adm.ListEndOffsets(ctx, topology.ReplaysTopic)
		if err == nil {
			out := map[int32]int64{}
			var perr error
			listed.Each(func(o kadm.ListedOffset) {
				switch {
				case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
				case o.Err != nil:
					perr = o.Err
				case o.Offset > 0:
					out[o.Partition] = o.Offset
				}
			})
			if perr == nil {
				return out, nil
			}
			err = perr
		}
		r.log.Warn("reactor: replays: listing end offsets failed, retrying", "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
