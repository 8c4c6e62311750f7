package workeffort_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

// TestDescriptionNullStaysNull: a Created with "description": null folds to a state whose
// JSON says null, not "" (which a Created with an empty description gives).
func TestDescriptionNullStaysNull(t *testing.T) {
	for _, tt := range []struct {
		desc any
		want string
	}{
		{nil, `"description":null`},
		{"", `"description":""`},
		{"d", `"description":"d"`},
		{map[string]any{"string": "w"}, `"description":"w"`},
	} {
		s, err := workeffort.Apply(workeffort.New("we-1"), workeffort.TypeCreated,
			map[string]any{"title": "T", "description": tt.desc}, 1, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tt.want) {
			t.Errorf("description %#v: %s, want %s", tt.desc, b, tt.want)
		}
	}
}
