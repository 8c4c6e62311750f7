package modules_test

import (
	"slices"
	"testing"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// TestTopologyFollowsTheList: the topology the CLI declares holds every listed module's
// topics and groups, and the read models' projections each have their group.
func TestTopologyFollowsTheList(t *testing.T) {
	top, err := modules.Topology(topology.Dev)
	if err != nil {
		t.Fatal(err)
	}
	w, err := modules.Wire()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules.List() {
		if _, err := top.EventsTopic(m.Aggregate); err != nil {
			t.Errorf("%s: %v", m.Aggregate, err)
		}
		for _, g := range m.Groups {
			if _, err := top.Group(g.Name); err != nil {
				t.Errorf("%s: group %s: %v", m.Aggregate, g.Name, err)
			}
		}
	}
	for _, rm := range w.ReadModels {
		for _, p := range rm.Projections {
			if g, err := top.Group(p.Name); err != nil || !g.StorePositions {
				t.Errorf("projection %s: group %+v, %v (want one with store positions)", p.Name, g, err)
			}
		}
	}
	if got := w.Rebuildable(); !slices.Contains(got, "work-efforts") {
		t.Errorf("rebuildable projections %v lack work-efforts", got)
	}
}

// TestReactorsSpecs: the reactors the flags turn on, and only those, are specs.
func TestReactorsSpecs(t *testing.T) {
	var none modules.Reactors
	if specs := none.Specs(); len(specs) != 0 {
		t.Errorf("no reactor configured: %d specs", len(specs))
	}
	dev := modules.Dev().Specs()
	if len(dev) != 1 || dev[0].Group != "deployment" {
		t.Errorf("pyrite dev's reactors: %+v", dev)
	}
}
