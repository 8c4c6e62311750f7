package bus

import (
	"slices"
	"testing"
)

// TestDeadKeys: holds count per key and handler, releases undo them one by one, the bound
// refuses new keys (not new dead letters of held keys), and a rebuild leaves out dead letters
// released while it read the DLQ.
func TestDeadKeys(t *testing.T) {
	at := tp{"src", 0}
	d := newDeadKeys(2)
	if !d.hold(at, "A", []string{"hook"}) || !d.hold(at, "A", []string{"hook"}) || !d.hold(at, "B", nil) {
		t.Fatal("holds within the bound refused")
	}
	if d.hold(at, "C", nil) {
		t.Fatal("a third key held past the bound of 2")
	}
	if !d.hold(at, "A", []string{"audit"}) {
		t.Fatal("a held key refused another dead letter")
	}
	if got := d.held(at, []byte("A")); !slices.Equal(got, []string{"audit", "hook"}) {
		t.Fatalf("A held for %v", got)
	}
	if got := d.held(at, []byte("B")); !slices.Equal(got, []string{""}) {
		t.Fatalf("B held for %v, want every handler", got)
	}
	d.release(at, "A", []string{"hook"}, "")
	d.release(at, "A", []string{"audit"}, "")
	if got := d.held(at, []byte("A")); !slices.Equal(got, []string{"hook"}) {
		t.Fatalf("A held for %v after two of three releases", got)
	}
	if d.release(at, "A", []string{"nobody"}, "") {
		t.Fatal("released a hold that was not there")
	}
	d.release(at, "A", []string{"hook"}, "")
	if d.held(at, []byte("A")) != nil || d.count(at) != 1 || !d.hold(at, "C", nil) {
		t.Fatalf("A still held, or its place under the bound not freed (%d keys)", d.count(at))
	}

	// A rebuild: dlq[0]@7 is released (redriven) while the DLQ is read, before its marker.
	d.beginLoad(at)
	d.release(at, "A", []string{"hook"}, "dlq[0]@7")
	over := d.reset(at, map[string]hold{
		"dlq[0]@7": {key: "A", handlers: []string{"hook"}},
		"dlq[0]@9": {key: "D"},
	})
	if over != 0 || d.held(at, []byte("A")) != nil || !slices.Equal(d.held(at, []byte("D")), []string{""}) || d.count(at) != 1 {
		t.Fatalf("after the rebuild: A %v, D %v, %d keys, %d over", d.held(at, []byte("A")), d.held(at, []byte("D")), d.count(at), over)
	}
	d.reset(at, nil)
	if d.count(at) != 0 {
		t.Fatal("forgetting the partition kept its keys")
	}
}
