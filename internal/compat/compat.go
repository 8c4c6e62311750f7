// Package compat decides whether Avro schemas can read each other's data, by the Avro specification's schema-resolution rules, for the Confluent compatibility levels.
//
// Check walks a reader schema against a writer schema the way a decoder
// resolves them (promotions, records by name or alias, fields by name or
// reader alias with reader defaults, enum defaults, union branch selection,
// fixed sizes, decimal scale and precision) and returns every
// incompatibility it finds, each naming the dotted field path from the root
// (n.y, l.items.y, m.values.y). It never panics on bad input: a schema that
// does not parse is an error wrapping ErrInvalidSchema.
//
// Guarantees: every call parses each schema with its own fresh hamba/avro
// SchemaCache and resolves each reader/writer pair with a fresh resolver, so
// nothing about one schema's meaning is cached across calls or keyed on
// Parsing Canonical Form (which drops defaults and aliases). Check is safe for
// concurrent use.
package compat

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// Level is a Confluent Schema Registry compatibility level.
type Level string

// The Confluent compatibility levels.
const (
	// None accepts every candidate.
	None Level = "NONE"
	// Backward: the candidate (reader) reads data written with the latest existing schema.
	Backward Level = "BACKWARD"
	// BackwardTransitive: the candidate reads data written with every existing schema.
	BackwardTransitive Level = "BACKWARD_TRANSITIVE"
	// Forward: the latest existing schema (reader) reads data written with the candidate.
	Forward Level = "FORWARD"
	// ForwardTransitive: every existing schema reads data written with the candidate.
	ForwardTransitive Level = "FORWARD_TRANSITIVE"
	// Full is Backward and Forward against the latest existing schema.
	Full Level = "FULL"
	// FullTransitive is Backward and Forward against every existing schema.
	FullTransitive Level = "FULL_TRANSITIVE"
)

var (
	// ErrInvalidLevel is returned for a compatibility level that is not one of the Level constants.
	ErrInvalidLevel = errors.New("compat: invalid compatibility level")
	// ErrInvalidSchema is wrapped by Check's error when a schema (or one of its references) does not parse.
	ErrInvalidSchema = errors.New("compat: invalid schema")
)

// ParseLevel returns the Level named by s, matched case-insensitively
// (surrounding space is not trimmed). An unknown name returns an error
// wrapping ErrInvalidLevel.
func ParseLevel(s string) (Level, error) {
	l := Level(strings.ToUpper(s))
	if _, _, _, err := l.rules(); err != nil {
		return "", fmt.Errorf("%w: %q", ErrInvalidLevel, s)
	}
	return l, nil
}

// rules reports which directions a level checks and whether it checks every
// existing schema (transitive) or only the latest.
func (l Level) rules() (backward, forward, transitive bool, err error) {
	switch l {
	case None:
		return false, false, false, nil
	case Backward:
		return true, false, false, nil
	case BackwardTransitive:
		return true, false, true, nil
	case Forward:
		return false, true, false, nil
	case ForwardTransitive:
		return false, true, true, nil
	case Full:
		return true, true, false, nil
	case FullTransitive:
		return true, true, true, nil
	}
	return false, false, false, fmt.Errorf("%w: %q", ErrInvalidLevel, string(l))
}

// Schema is an Avro schema text with the schemas defining the named types it
// refers to (Confluent schema references). Each reference may itself have
// references; they are parsed depth-first, in order, before Text, all into
// one cache private to this schema.
type Schema struct {
	Text       string
	References []Schema
}

// Check returns every incompatibility of candidate against existing (oldest
// first) under level; nil means compatible. Non-transitive levels check only
// the last existing schema; transitive levels check all of them, oldest
// first. BACKWARD: candidate (reader) reads existing (writer) data; FORWARD:
// existing reads candidate; FULL both (backward messages before forward ones
// for each existing schema).
//
// Each message says the direction and the index into existing it concerns,
// then the problem with its dotted field path, e.g.
//
//	backward: new schema cannot read data written by existing[0]: reader field "n.y" has no default and is missing in writer
//
// NONE returns nil without checking, and so does an empty existing. The
// candidate is parsed under every level; an existing schema only when the
// level checks it. An unknown level returns ErrInvalidLevel; a schema that
// does not parse returns an error wrapping ErrInvalidSchema and no messages.
func Check(level Level, candidate Schema, existing []Schema) ([]string, error) {
	backward, forward, transitive, err := level.rules()
	if err != nil {
		return nil, err
	}
	cand, err := parse(candidate)
	if err != nil {
		return nil, fmt.Errorf("candidate: %w", err)
	}
	if len(existing) == 0 || (!backward && !forward) {
		return nil, nil
	}
	first := len(existing) - 1
	if transitive {
		first = 0
	}
	var msgs []string
	for i := first; i < len(existing); i++ {
		old, err := parse(existing[i])
		if err != nil {
			return nil, fmt.Errorf("existing[%d]: %w", i, err)
		}
		if backward {
			ctx := fmt.Sprintf("backward: new schema cannot read data written by existing[%d]", i)
			msgs = appendRendered(msgs, ctx, resolve(cand, old))
		}
		if forward {
			ctx := fmt.Sprintf("forward: existing[%d] cannot read data written by new schema", i)
			msgs = appendRendered(msgs, ctx, resolve(old, cand))
		}
	}
	return msgs, nil
}

func appendRendered(msgs []string, ctx string, issues []issue) []string {
	for _, is := range issues {
		msgs = append(msgs, ctx+": "+is.render(is.path))
	}
	return msgs
}

// maxRefDepth bounds how deeply references may nest; a registry never builds
// chains this deep, and the bound keeps a hostile request from exhausting the
// stack.
const maxRefDepth = 64

// parse parses s with a fresh schema cache holding its references' types.
func parse(s Schema) (avro.Schema, error) {
	cache := &avro.SchemaCache{}
	done := make(map[string]bool)
	if err := parseRefs(cache, s.References, "references", 0, done); err != nil {
		return nil, err
	}
	sch, err := avro.ParseWithCache(s.Text, "", cache)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSchema, err)
	}
	return sch, nil
}

func parseRefs(cache *avro.SchemaCache, refs []Schema, where string, depth int, done map[string]bool) error {
	if len(refs) > 0 && depth >= maxRefDepth {
		return fmt.Errorf("%w: %s: references nested deeper than %d", ErrInvalidSchema, where, maxRefDepth)
	}
	for i, ref := range refs {
		// A reference reached twice (a diamond) is parsed once: parsing it
		// again would only re-add the same definitions.
		if done[ref.Text] {
			continue
		}
		at := fmt.Sprintf("%s[%d]", where, i)
		if err := parseRefs(cache, ref.References, at+".references", depth+1, done); err != nil {
			return err
		}
		if _, err := avro.ParseWithCache(ref.Text, "", cache); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidSchema, at, err)
		}
		done[ref.Text] = true
	}
	return nil
}
