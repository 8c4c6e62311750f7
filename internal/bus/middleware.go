package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
)

// The seed's four middlewares.

// Logging logs every event at Info ("event published", with type, id, aggregate ID and
// time) and passes it on unchanged.
func Logging(l *slog.Logger) Middleware {
	return func(ctx context.Context, ev *Event) (*Event, error) {
		l.LogAttrs(ctx, slog.LevelInfo, "event published",
			slog.String("type", ev.Type), slog.String("id", ev.ID),
			slog.String("aggregateId", ev.AggregateID), slog.Time("time", ev.Time))
		return ev, nil
	}
}

// Validation rejects every event for which check returns an error. The rejection is
// permanent and wraps ErrInvalidEvent and check's error. CheckEnvelope is a ready check.
func Validation(check func(*Event) error) Middleware {
	return func(_ context.Context, ev *Event) (*Event, error) {
		if err := check(ev); err != nil {
			return nil, Permanent(fmt.Errorf("%w: %s %s: %w", ErrInvalidEvent, ev.Type, ev.ID, err))
		}
		return ev, nil
	}
}

// CheckEnvelope reports every envelope field an event lacks (ID, Type, AggregateID,
// Time), joined.
func CheckEnvelope(ev *Event) error {
	var errs []error
	if ev.ID == "" {
		errs = append(errs, errors.New("id is empty"))
	}
	if ev.Type == "" {
		errs = append(errs, errors.New("type is empty"))
	}
	if ev.AggregateID == "" {
		errs = append(errs, errors.New("aggregateId is empty"))
	}
	if ev.Time.IsZero() {
		errs = append(errs, errors.New("time is not set"))
	}
	return errors.Join(errs...)
}

// Enrichment adds ext to every event's Extensions (overwriting keys the event already
// has), on a copy of the event. ext is copied; see HostExtensions for the seed's host and
// process attributes.
func Enrichment(ext map[string]string) Middleware {
	ext = maps.Clone(ext)
	return func(_ context.Context, ev *Event) (*Event, error) {
		out := ev.Clone()
		if out.Extensions == nil {
			out.Extensions = make(map[string]string, len(ext))
		}
		maps.Copy(out.Extensions, ext)
		return out, nil
	}
}

// HostExtensions returns the seed's enrichment attributes as CloudEvents extension names:
// "hostname" (omitted when the OS cannot tell) and "processid".
func HostExtensions() map[string]string {
	ext := map[string]string{"processid": strconv.Itoa(os.Getpid())}
	if h, err := os.Hostname(); err == nil && h != "" {
		ext["hostname"] = h
	}
	return ext
}

// Filter cancels every event for which keep returns false (Publish returns ErrDropped).
func Filter(keep func(*Event) bool) Middleware {
	return func(_ context.Context, ev *Event) (*Event, error) {
		if !keep(ev) {
			return nil, nil
		}
		return ev, nil
	}
}
