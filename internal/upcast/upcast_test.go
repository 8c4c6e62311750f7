package upcast_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

const progress = "pyrite.workeffort.ProgressUpdated"

// thing is a test subject whose history only schema resolution carries: v2 adds a field with
// a default, v3 widens an int to a long and drops "gone", v4 adds "gone" back with a default.
const thing = "pyrite.workeffort.Thing"

var thingVersions = []string{
	`{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"int"},{"name":"gone","type":"string"}]}`,
	`{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"int"},{"name":"gone","type":"string"},{"name":"label","type":"string","default":"none"}]}`,
	`{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"long"},{"name":"label","type":"string","default":"none"}]}`,
	`{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"long"},{"name":"label","type":"string","default":"none"},{"name":"gone","type":"string","default":"dflt"}]}`,
}

// fixture is a fake registry with every schema of schemas/ plus Thing, a codec and an
// Upcaster with the Default chain.
type fixture struct {
	reg   *fakeRegistry
	codec *codec.Codec
	up    *upcast.Upcaster
	ids   map[string]int // "<subject>/v<N>"
}

func newFixture(t testing.TB, chain *upcast.Chain, opts ...codec.Option) *fixture {
	t.Helper()
	fx := &fixture{reg: withSchemas(t), ids: map[string]int{}}
	for _, text := range thingVersions {
		fx.reg.register(t, thing, text)
	}
	for subject, vs := range fx.reg.subjects {
		for v, id := range vs {
			fx.ids[fmt.Sprintf("%s/v%d", subject, v)] = id
		}
	}
	if chain == nil {
		var err error
		if chain, err = domain.Chain([]domain.Module{workeffort.Module()}); err != nil {
			t.Fatal(err)
		}
	}
	fx.codec = codec.New(fx.reg, opts...)
	fx.up = upcast.New(fx.codec, chain, fx.reg)
	return fx
}

func (fx *fixture) id(t testing.TB, subject string, v int) int {
	t.Helper()
	id, ok := fx.ids[fmt.Sprintf("%s/v%d", subject, v)]
	if !ok {
		t.Fatalf("no %s v%d", subject, v)
	}
	return id
}

// encode frames v with subject version ver.
func (fx *fixture) encode(t testing.TB, subject string, ver int, v any) []byte {
	t.Helper()
	s, err := fx.codec.Version(context.Background(), subject, ver)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fx.codec.Encode(s, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// upcast runs WriterOf then Upcast with the event type routed from the subject.
func (fx *fixture) upcast(ctx context.Context, value []byte) (upcast.Result, error) {
	w, err := fx.up.WriterOf(ctx, value)
	if err != nil {
		return upcast.Result{}, err
	}
	et := "WorkEffort:" + w.Subject[strings.LastIndex(w.Subject, ".")+1:]
	return fx.up.Upcast(ctx, et, w, value, nil)
}

func (fx *fixture) decode(t testing.TB, value []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	if _, err := fx.codec.Decode(context.Background(), value, nil, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUpcast(t *testing.T) {
	fx := newFixture(t, nil)
	type v1 = map[string]any
	tests := []struct {
		name      string
		subject   string
		version   int
		value     any
		wantTo    int
		want      map[string]any
		unchanged bool
	}{
		{name: "ProgressUpdated v1 through both functions", subject: progress, version: 1,
			value:  v1{"oldProgress": 10, "newProgress": 60},
			wantTo: 3, want: v1{"oldProgress": 10, "newProgress": 60, "delta": 50, "formatted": "60%"}},
		{name: "ProgressUpdated v1 going down", subject: progress, version: 1,
			value:  v1{"oldProgress": 80, "newProgress": 30},
			wantTo: 3, want: v1{"oldProgress": 80, "newProgress": 30, "delta": -50, "formatted": "30%"}},
		{name: "ProgressUpdated v2 keeps its delta", subject: progress, version: 2,
			value:  v1{"oldProgress": 1, "newProgress": 2, "delta": 7},
			wantTo: 3, want: v1{"oldProgress": 1, "newProgress": 2, "delta": 7, "formatted": "2%"}},
		{name: "ProgressUpdated v3 is passed on", subject: progress, version: 3,
			value:  v1{"oldProgress": 1, "newProgress": 2, "delta": 1, "formatted": "x"},
			wantTo: 3, want: v1{"oldProgress": 1, "newProgress": 2, "delta": 1, "formatted": "x"}, unchanged: true},
		{name: "single-version type is passed on", subject: "pyrite.workeffort.Started", version: 1,
			value:  v1{"title": "w1", "startedAt": time.UnixMilli(1700000000000).UTC()},
			wantTo: 1, unchanged: true},
		{name: "resolution only: default, promotion, drop and re-add", subject: thing, version: 1,
			value:  v1{"n": 5, "gone": "lost"},
			wantTo: 4, want: v1{"n": int64(5), "label": "none", "gone": "dflt"}},
		{name: "resolution from the middle", subject: thing, version: 3,
			value:  v1{"n": int64(1) << 40, "label": "l"},
			wantTo: 4, want: v1{"n": int64(1) << 40, "label": "l", "gone": "dflt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fx.encode(t, tt.subject, tt.version, tt.value)
			res, err := fx.upcast(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if res.From.Version != tt.version || res.From.ID != fx.id(t, tt.subject, tt.version) {
				t.Errorf("From = %+v, want version %d", res.From, tt.version)
			}
			if res.To.Version != tt.wantTo || res.To.ID != fx.id(t, tt.subject, tt.wantTo) {
				t.Errorf("To = %+v, want version %d id %d", res.To, tt.wantTo, fx.id(t, tt.subject, tt.wantTo))
			}
			id, _, err := codec.SplitFrame(res.Value)
			if err != nil || id != res.To.ID {
				t.Errorf("output frame id %d (%v), want %d", id, err, res.To.ID)
			}
			if tt.unchanged && !bytes.Equal(res.Value, in) {
				t.Errorf("value changed: %x, want %x", res.Value, in)
			}
			if tt.want != nil {
				if got := fx.decode(t, res.Value); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
			}
		})
	}
}

func TestUpcastAppendsToDst(t *testing.T) {
	fx := newFixture(t, nil)
	in := fx.encode(t, progress, 1, map[string]any{"oldProgress": 0, "newProgress": 5})
	w, err := fx.up.WriterOf(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	dst := []byte("prefix")
	res, err := fx.up.Upcast(t.Context(), workeffort.TypeProgressUpdated, w, in, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(res.Value, []byte("prefix")) {
		t.Fatalf("result %q does not extend dst", res.Value)
	}
	if got := fx.decode(t, res.Value[len("prefix"):]); got["formatted"] != "5%" {
		t.Errorf("formatted = %v", got["formatted"])
	}
}

func TestUpcastErrors(t *testing.T) {
	boom, err := domain.Chain([]domain.Module{workeffort.Module()})
	if err != nil {
		t.Fatal(err)
	}
	failing := upcast.NewChain()
	if err := upcast.Register(failing, "WorkEffort:Thing", 1, func(in map[string]any) (map[string]any, error) {
		return nil, errors.New("refused")
	}); err != nil {
		t.Fatal(err)
	}
	panicking := upcast.NewChain()
	if err := upcast.Register(panicking, workeffort.TypeProgressUpdated, 2, func(workeffort.ProgressUpdatedV2) (workeffort.ProgressUpdatedV3, error) {
		panic("oops")
	}); err != nil {
		t.Fatal(err)
	}
	badOutput := upcast.NewChain()
	if err := upcast.RegisterMap(badOutput, workeffort.TypeProgressUpdated, 2, func(m map[string]any) (map[string]any, error) {
		return map[string]any{"oldProgress": "not a number"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chain *upcast.Chain
		value func(fx *fixture) []byte
		setup func(fx *fixture)
		want  error
	}{
		{name: "empty value", value: func(*fixture) []byte { return nil }, want: upcast.ErrNotFramed},
		{name: "JSON value", value: func(*fixture) []byte { return []byte(`{"oldProgress":1}`) }, want: codec.ErrBadMagic},
		{name: "short value", value: func(*fixture) []byte { return []byte{0, 0, 0} }, want: codec.ErrShortValue},
		{name: "unknown schema id", value: func(*fixture) []byte { return []byte{0, 0, 0, 0x7f, 0x7f, 2, 4} }, want: codec.ErrUnknownSchemaID},
		{name: "truncated body", chain: boom, value: func(fx *fixture) []byte {
			b := fx.encode(t, progress, 1, map[string]any{"oldProgress": 1000, "newProgress": 2000})
			return b[:len(b)-1]
		}, want: codec.ErrInvalidData},
		{name: "trailing bytes at the newest version", value: func(fx *fixture) []byte {
			return append(fx.encode(t, progress, 3, map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1, "formatted": "2%"}), 0)
		}, want: codec.ErrInvalidData},
		{name: "function error: delta overflows", value: func(fx *fixture) []byte {
			return fx.encode(t, progress, 1, map[string]any{"oldProgress": -2147483648, "newProgress": 2147483647})
		}, want: workeffort.ErrOutOfRange},
		{name: "map function error", chain: failing, value: func(fx *fixture) []byte {
			return fx.encode(t, thing, 1, map[string]any{"n": 1, "gone": "g"})
		}, want: upcast.ErrStepFailed},
		{name: "function panics", chain: panicking, value: func(fx *fixture) []byte {
			return fx.encode(t, progress, 2, map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1})
		}, want: upcast.ErrStepFailed},
		{name: "function output does not fit", chain: badOutput, value: func(fx *fixture) []byte {
			return fx.encode(t, progress, 2, map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1})
		}, want: upcast.ErrStepFailed},
		{name: "no path", value: func(fx *fixture) []byte {
			fx.reg.register(t, thing, `{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"long"},{"name":"required","type":"string"}]}`)
			return fx.encode(t, thing, 4, map[string]any{"n": int64(1), "label": "l", "gone": "g"})
		}, want: upcast.ErrNoPath},
		{name: "registry down", value: func(fx *fixture) []byte {
			b := fx.encode(t, thing, 1, map[string]any{"n": 1, "gone": "g"})
			fx.reg.down.Store(true)
			return b
		}, want: codec.ErrRegistryUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, tt.chain, codec.WithLatestTTL(time.Nanosecond))
			_, err := fx.upcast(t.Context(), tt.value(fx))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got, want := upcast.Transient(err), errors.Is(tt.want, codec.ErrRegistryUnavailable); got != want {
				t.Errorf("Transient = %v, want %v", got, want)
			}
			var se *upcast.StepError
			if errors.Is(err, upcast.ErrStepFailed) && (!errors.As(err, &se) || se.EventType == "" || se.From < 1 || se.To <= se.From) {
				t.Errorf("step error %#v does not say which step", se)
			}
		})
	}
}

func TestNewVersionPickedUp(t *testing.T) {
	fx := newFixture(t, nil, codec.WithLatestTTL(time.Hour))
	ctx := t.Context()
	v1 := fx.encode(t, thing, 1, map[string]any{"n": 1, "gone": "g"})
	res, err := fx.upcast(ctx, v1)
	if err != nil || res.To.Version != 4 {
		t.Fatalf("before: to %+v, %v", res.To, err)
	}
	// v5 is registered; the codec still serves v4 as the newest (TTL an hour).
	fx.reg.register(t, thing, `{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"long"},{"name":"label","type":"string","default":"none"},{"name":"gone","type":"string","default":"dflt"},{"name":"v5","type":"int","default":5}]}`)
	if res, err = fx.upcast(ctx, v1); err != nil || res.To.Version != 4 {
		t.Fatalf("within the TTL: to %+v, %v (want 4)", res.To, err)
	}
	// A value written with v5 (a new id, looked up on demand) is passed on at v5...
	v5 := fx.encode(t, thing, 5, map[string]any{"n": int64(2), "label": "l", "gone": "g", "v5": 9})
	if res, err = fx.upcast(ctx, v5); err != nil || res.To.Version != 5 || !bytes.Equal(res.Value, v5) {
		t.Fatalf("v5 value: to %+v, %v", res.To, err)
	}
	// ...and from then on older ones go to v5 as well: the output version never goes down.
	res, err = fx.upcast(ctx, v1)
	if err != nil || res.To.Version != 5 {
		t.Fatalf("after a v5 value: to %+v, %v (want 5)", res.To, err)
	}
	if got := fx.decode(t, res.Value); got["v5"] != 5 || got["gone"] != "dflt" {
		t.Errorf("got %v", got)
	}
}

func TestNewVersionAfterTTL(t *testing.T) {
	fx := newFixture(t, nil, codec.WithLatestTTL(time.Millisecond))
	ctx := t.Context()
	v1 := fx.encode(t, thing, 1, map[string]any{"n": 1, "gone": "g"})
	if res, err := fx.upcast(ctx, v1); err != nil || res.To.Version != 4 {
		t.Fatalf("before: to %+v, %v", res.To, err)
	}
	fx.reg.register(t, thing, `{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"long"},{"name":"label","type":"string","default":"none"},{"name":"gone","type":"string","default":"dflt"},{"name":"v5","type":"int","default":5}]}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := fx.upcast(ctx, v1)
		if err != nil {
			t.Fatal(err)
		}
		if res.To.Version == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still writing version %d after the TTL", res.To.Version)
		}
		time.Sleep(time.Millisecond) // the TTL is a millisecond: poll past it
	}
}

func TestDeletedVersionsAreSkipped(t *testing.T) {
	// Thing v2 deleted: v1 steps straight to v3 by resolution, so label takes v3's default.
	fx := newFixture(t, nil)
	fx.reg.deleteVersion(thing, 2)
	res, err := fx.upcast(t.Context(), fx.encode(t, thing, 1, map[string]any{"n": 1, "gone": "g"}))
	if err != nil || res.To.Version != 4 {
		t.Fatalf("to %+v, %v", res.To, err)
	}
	if got := fx.decode(t, res.Value); got["n"] != int64(1) || got["label"] != "none" {
		t.Errorf("got %v", got)
	}
}

func TestProgressFunctions(t *testing.T) {
	tests := []struct {
		name    string
		in      workeffort.ProgressUpdatedV1
		want    workeffort.ProgressUpdatedV3
		wantErr error
	}{
		{name: "up", in: workeffort.ProgressUpdatedV1{OldProgress: 25, NewProgress: 50},
			want: workeffort.ProgressUpdatedV3{OldProgress: 25, NewProgress: 50, Delta: 25, Formatted: "50%"}},
		{name: "down", in: workeffort.ProgressUpdatedV1{OldProgress: 100, NewProgress: 0},
			want: workeffort.ProgressUpdatedV3{OldProgress: 100, NewProgress: 0, Delta: -100, Formatted: "0%"}},
		{name: "overflow", in: workeffort.ProgressUpdatedV1{OldProgress: -2147483648, NewProgress: 1}, wantErr: workeffort.ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v2, err := workeffort.ProgressUpdatedV1ToV2(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			v3, err := workeffort.ProgressUpdatedV2ToV3(v2)
			if err != nil || v3 != tt.want {
				t.Errorf("got %+v, %v; want %+v", v3, err, tt.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	c := upcast.NewChain()
	id := func(v workeffort.ProgressUpdatedV1) (workeffort.ProgressUpdatedV1, error) { return v, nil }
	tests := []struct {
		name      string
		eventType string
		from      int
		want      error
	}{
		{name: "first", eventType: "A:B", from: 1},
		{name: "duplicate", eventType: "A:B", from: 1, want: upcast.ErrDuplicateStep},
		{name: "other version", eventType: "A:B", from: 2},
		{name: "version zero", eventType: "A:B", from: 0, want: upcast.ErrBadStep},
		{name: "no type", eventType: "", from: 1, want: upcast.ErrBadStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := upcast.Register(c, tt.eventType, tt.from, id); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if got := c.Steps(); len(got) != 2 || got[0].From != 1 || got[1].From != 2 || got[0].In != "workeffort.ProgressUpdatedV1" {
		t.Errorf("Steps = %+v", got)
	}
}
