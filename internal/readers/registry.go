package readers

import "github.com/pyrite-dev/pyrite/internal/registry"

// LiveReaders returns the readers of subject in the form registry.WithLiveReaders takes,
// so a registry refuses a version that a recorded reader cannot read.
func (s *Set) LiveReaders(subject string) []registry.LiveReader {
	var out []registry.LiveReader
	for _, r := range s.Of(subject) {
		out = append(out, registry.LiveReader{Group: r.Group, Version: r.Version, Schema: r.Schema})
	}
	return out
}
