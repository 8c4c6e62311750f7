package deployment

import (
	"testing"

	"github.com/pyrite-dev/pyrite/internal/reactor"
)

// The manager declares the types Handle decides about, so its group moves past the rest
// of the WorkEffort topic without decoding it; every type Handle acts on stays wanted.
func TestManagerWantsWhatItHandles(t *testing.T) {
	m, err := New(Config{}, reactor.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	wants := m.handler.Wants()
	if wants == nil {
		t.Fatal("the manager declares no types: its group decodes every record")
	}
	for typ, want := range map[string]bool{
		TypeCompleted: true, TypeStepTimedOut: true, TypeTestsPassed: true, TypeBuildFailed: true, TypeDeployed: true,
		"WorkEffort:ProgressUpdated": false, "WorkEffort:Created": false,
	} {
		if got := wants(typ); got != want {
			t.Errorf("wants(%q) = %v, want %v", typ, got, want)
		}
	}
}
