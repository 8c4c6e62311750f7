package projector

import (
	"testing"

	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// TestUpcasterGroup keeps the board's name for the upcaster's consumer group the upcaster's.
func TestUpcasterGroup(t *testing.T) {
	if upcasterGroup != upcaster.DefaultConsumerGroup {
		t.Fatalf("projector names the upcaster's group %q, the upcaster %q", upcasterGroup, upcaster.DefaultConsumerGroup)
	}
}
