package upcast_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// routeDomain routes pyrite.workeffort.* subjects to WorkEffort event types.
func routeDomain(subject string) (string, bool) {
	name, ok := strings.CutPrefix(subject, "pyrite.workeffort.")
	return "WorkEffort:" + name, ok
}

const thingV5Required = `{"type":"record","name":"Thing","namespace":"pyrite.workeffort","fields":[{"name":"n","type":"long"},{"name":"required","type":"string"}]}`

func TestCheck(t *testing.T) {
	wrongOutput := upcast.NewChain()
	type notV2 struct {
		Other string `avro:"other"`
	}
	if err := upcast.Register(wrongOutput, workeffort.TypeProgressUpdated, 1, func(workeffort.ProgressUpdatedV1) (notV2, error) { return notV2{}, nil }); err != nil {
		t.Fatal(err)
	}
	wrongInput := upcast.NewChain()
	type notV1 struct {
		Old string `avro:"oldProgress"`
	}
	if err := upcast.Register(wrongInput, workeffort.TypeProgressUpdated, 1, func(notV1) (workeffort.ProgressUpdatedV2, error) {
		return workeffort.ProgressUpdatedV2{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// A function bridges Thing v4 to the v5 that resolution cannot reach.
	bridged, err := domain.Chain([]domain.Module{workeffort.Module()})
	if err != nil {
		t.Fatal(err)
	}
	if err := upcast.RegisterMap(bridged, "WorkEffort:Thing", 4, func(m map[string]any) (map[string]any, error) {
		return map[string]any{"n": m["n"], "required": "x"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chain *upcast.Chain
		setup func(t *testing.T, fx *fixture)
		route upcast.Route
		want  []string // substrings of the error, one per gap; nil for no error
	}{
		{name: "every schema with the default chain"},
		{name: "no chain: ProgressUpdated resolves by defaults", chain: upcast.NewChain()},
		{name: "a version that does not resolve", setup: func(t *testing.T, fx *fixture) {
			fx.reg.register(t, thing, thingV5Required)
		}, want: []string{`pyrite.workeffort.Thing version 4 to 5 (WorkEffort:Thing): no upcaster function is registered and schema resolution fails: reader field "required" has no default`}},
		{name: "a function bridges it", chain: bridged, setup: func(t *testing.T, fx *fixture) {
			fx.reg.register(t, thing, thingV5Required)
		}},
		{name: "an unrouted subject is not checked", route: func(s string) (string, bool) {
			return routeDomain(s)
		}, setup: func(t *testing.T, fx *fixture) {
			fx.reg.register(t, "pyrite.system.Thing", strings.ReplaceAll(thingVersions[0], "workeffort", "system"))
			fx.reg.register(t, "pyrite.system.Thing", strings.ReplaceAll(thingV5Required, "workeffort", "system"))
		}},
		{name: "function output does not fit", chain: wrongOutput,
			want: []string{"pyrite.workeffort.ProgressUpdated version 1 to 2 (WorkEffort:ProgressUpdated): the output type upcast_test.notV2 of the registered function does not fit version 2"}},
		{name: "function input does not fit", chain: wrongInput,
			want: []string{"the input type upcast_test.notV1 of the registered function does not fit version 1"}},
		{name: "every gap is named", setup: func(t *testing.T, fx *fixture) {
			fx.reg.register(t, thing, thingV5Required)
			fx.reg.register(t, "pyrite.workeffort.Other", `{"type":"record","name":"Other","namespace":"pyrite.workeffort","fields":[]}`)
			fx.reg.register(t, "pyrite.workeffort.Other", `{"type":"record","name":"Other","namespace":"pyrite.workeffort","fields":[{"name":"a","type":"int"}]}`)
		}, want: []string{"pyrite.workeffort.Thing version 4 to 5", "pyrite.workeffort.Other version 1 to 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, tt.chain)
			if tt.setup != nil {
				tt.setup(t, fx)
			}
			route := tt.route
			if route == nil {
				route = routeDomain
			}
			err := fx.up.Check(t.Context(), route)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected gaps: %v", err)
				}
				return
			}
			if !errors.Is(err, upcast.ErrGap) {
				t.Fatalf("err = %v, want a gap", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tt.want) {
				t.Errorf("%d gaps reported, want %d:\n%v", n, len(tt.want), err)
			}
			var ge *upcast.GapError
			if !errors.As(err, &ge) || ge.Subject == "" || ge.From < 1 {
				t.Errorf("no *GapError in %v", err)
			}
		})
	}
}

func TestCheckRegistryDown(t *testing.T) {
	fx := newFixture(t, nil)
	fx.reg.down.Store(true)
	err := fx.up.Check(t.Context(), routeDomain)
	if !upcast.Transient(err) || errors.Is(err, upcast.ErrGap) {
		t.Fatalf("err = %v, want transient", err)
	}
	if !errors.Is(err, codec.ErrRegistryUnavailable) {
		t.Fatalf("err = %v", err)
	}
}
