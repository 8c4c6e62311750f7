package registry

import (
	"fmt"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// LiveReader is a reader schema a live consumer decodes a subject's data with (see
// internal/readers, which records them on pyrite.readers).
type LiveReader struct {
	Group   string
	Version int
	Schema  string
}

// WithLiveReaders turns on the opt-in reader check: registering a new version of a
// subject is also refused (409, the incompatible-schema code) when a reader that
// of(subject) returns cannot read data written with it, by Avro resolution, whatever the
// subject's compatibility level says. The message names each group, its reader version
// and the field path. IMPORT mode and force=true skip it, as they skip the level's check;
// re-registering a schema the subject already has is never refused. of is called with
// the registry's write lock held and must not block.
func WithLiveReaders(of func(subject string) []LiveReader) Option {
	return func(c *config) { c.liveReaders = of }
}

// checkLiveReaders refuses a new version of subject that a live reader cannot read.
func (r *Registry) checkLiveReaders(st *state, subject string, body *schemaRequest, normalize, force bool) error {
	if r.cfg.liveReaders == nil || force || st.mode(subject) == modeImport {
		return nil
	}
	live := r.cfg.liveReaders(subject)
	if len(live) == 0 {
		return nil
	}
	cand, err := makeCandidate(st, body, normalize)
	if err != nil {
		return err
	}
	var msgs []string
	for _, lr := range live {
		issues, err := compat.Readable(compat.Schema{Text: lr.Schema}, cand.tree)
		if err != nil {
			issues = []string{err.Error()}
		}
		for _, is := range issues {
			msgs = append(msgs, fmt.Sprintf("group %s reads with reader version %d: %s", lr.Group, lr.Version, is))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return newAPIError(codeIncompatibleSchema,
		"Schema being registered cannot be read by a live reader of subject \"%s\", details: [%s]",
		subject, strings.Join(msgs, ", "))
}
