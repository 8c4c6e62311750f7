package crashtest

import (
	"strings"
	"testing"
	"time"
)

func TestCount(t *testing.T) {
	acc := map[string]bool{"a/0": true, "a/1": true, "a/2": true, "b/0": true}
	tests := []struct {
		name                string
		seen                []Seen
		lost, dup, disorder int
	}{
		{"exact", []Seen{{ID: "a/0"}, {ID: "a/1"}, {ID: "b/0"}, {ID: "a/2"}}, 0, 0, 0},
		{"lost", []Seen{{ID: "a/0"}, {ID: "a/2"}, {ID: "b/0"}}, 1, 0, 0},
		{"duplicate adjacent", []Seen{{ID: "a/0"}, {ID: "a/1"}, {ID: "a/1"}, {ID: "a/2"}, {ID: "b/0"}}, 0, 1, 0},
		{"out of order", []Seen{{ID: "a/1"}, {ID: "a/0"}, {ID: "a/2"}, {ID: "b/0"}}, 0, 0, 1},
		{"unacknowledged once is fine", []Seen{{ID: "a/0"}, {ID: "a/1"}, {ID: "a/2"}, {ID: "a/3"}, {ID: "b/0"}}, 0, 0, 0},
		{"unacknowledged twice is not", []Seen{{ID: "a/0"}, {ID: "a/1"}, {ID: "a/2"}, {ID: "a/3"}, {ID: "a/3"}, {ID: "b/0"}}, 0, 1, 0},
		{"foreign ids ignored", []Seen{{ID: "x"}, {ID: "a/0"}, {ID: "a/1"}, {ID: "a/2"}, {ID: "b/0"}}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Count(acc, tt.seen)
			if got.Lost != tt.lost || got.Duplicated != tt.dup || got.OutOfOrder != tt.disorder {
				t.Fatalf("lost %d dup %d out of order %d; want %d %d %d", got.Lost, got.Duplicated, got.OutOfOrder, tt.lost, tt.dup, tt.disorder)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	rows := []Row{{Fault: "kill dev #1", Events: 10, Recover: 1500 * time.Millisecond}, {Fault: "clean restart", Events: 20, Lost: 1}}
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "kill dev #1") || !strings.Contains(b.String(), "1.5s") || !rows[1].Failed() || rows[0].Failed() {
		t.Fatalf("table:\n%s", b.String())
	}
}
