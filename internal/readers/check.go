package readers

import (
	"fmt"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// Problem is a recorded reader that cannot read data written with a candidate schema.
type Problem struct {
	Group         string
	Type          string
	ReaderVersion int
	// Issue names the field path, e.g. `reader field "formatted" has no default and is
	// missing in writer`.
	Issue string
}

func (p Problem) String() string {
	return fmt.Sprintf("group %s reads %s with reader version %d: %s", p.Group, p.Type, p.ReaderVersion, p.Issue)
}

// Check returns, for every reader among rs, every reason it cannot read data written with
// writer (the Avro text of a candidate version of rs' subject): one Problem per reason, in
// the order of rs. A reader whose own schema does not parse is a Problem too (it cannot be
// shown safe); a writer that does not parse is an error.
func Check(rs []Reader, writer string) ([]Problem, error) {
	// The writer must parse on its own first: a reader failing on it would otherwise look
	// like that reader's problem.
	if _, err := compat.Readable(compat.Schema{Text: writer}, compat.Schema{Text: writer}); err != nil {
		return nil, fmt.Errorf("readers: candidate: %w", err)
	}
	var out []Problem
	for _, r := range rs {
		msgs, err := compat.Readable(compat.Schema{Text: r.Schema}, compat.Schema{Text: writer})
		if err != nil {
			msgs = []string{err.Error()}
		}
		for _, m := range msgs {
			out = append(out, Problem{Group: r.Group, Type: r.Type, ReaderVersion: r.Version, Issue: m})
		}
	}
	return out, nil
}
