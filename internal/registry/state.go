package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// Defaults when nothing is configured, as in Confluent's registry.
const (
	defaultCompatibility = string(compat.Backward)
	modeReadWrite        = "READWRITE"
	modeReadOnly         = "READONLY"
	modeReadOnlyOverride = "READONLY_OVERRIDE"
	modeImport           = "IMPORT"
)

// maxRefDepth bounds how deeply stored references are followed.
const maxRefDepth = 32

// errSkipped marks a record that is not applied because it is unreadable or
// of a kind this registry does not keep (contexts, associations, ...).
var errSkipped = errors.New("record skipped")

// errForeignKeyType marks a well-formed record of a key type this registry
// does not use (Confluent's CONTEXT, ASSOCIATION, ... records).
var errForeignKeyType = errors.New("unused key type")

// schemaVersion is one version of a subject.
type schemaVersion struct {
	Subject    string
	Version    int
	ID         int
	Schema     string
	SchemaType string // "" means AVRO
	Refs       []Reference
	Metadata   *Metadata
	RuleSet    *RuleSet
	MD5        string // the record's own md5 field, kept when the record is rewritten
	GUID       guid
	Deleted    bool
	identity   string
}

// idEntry is a schema id: its schema and how many subject versions use it.
type idEntry struct {
	schema     string
	schemaType string
	refs       []Reference
	metadata   *Metadata
	ruleSet    *RuleSet
	guid       guid
	identity   string
	users      int
}

// state is the registry's in-memory view of the store topic. It is only
// changed by apply, in log order, so every instance reading the same log
// reaches the same state. It is not safe for concurrent use; Registry
// guards it.
type state struct {
	subjects   map[string]map[int]*schemaVersion
	ids        map[int]*idEntry
	byIdentity map[string]int
	byGUID     map[guid]int
	maxID      int
	compat     map[string]string // subject ("" = global) -> level
	modes      map[string]string // subject ("" = global) -> mode
}

func newState() *state {
	return &state{
		subjects:   map[string]map[int]*schemaVersion{},
		ids:        map[int]*idEntry{},
		byIdentity: map[string]int{},
		byGUID:     map[guid]int{},
		compat:     map[string]string{},
		modes:      map[string]string{},
	}
}

// apply applies one record of the store topic. It returns nil when the
// record was applied (or is a no-op such as NOOP), an error wrapping
// errSkipped for a record it cannot or does not use, and an error wrapping
// ErrConflict for a SCHEMA record that would give a schema id to a second,
// different schema or change the schema of an existing subject version:
// such a record is rejected, deterministically, by every reader.
func (s *state) apply(key, value []byte) error {
	k, err := decodeKey(key)
	if err != nil {
		return fmt.Errorf("%w: %v", errSkipped, err)
	}
	subject := ""
	if k.Subject != nil {
		subject = *k.Subject
	}
	switch k.KeyType {
	case keyTypeSchema:
		return s.applySchema(k, subject, value)
	case keyTypeConfig:
		return s.applySetting(s.compat, subject, value, func(b []byte) (string, error) {
			var v configValue
			if err := json.Unmarshal(b, &v); err != nil {
				return "", err
			}
			if v.CompatibilityLevel == "" {
				return "", nil
			}
			l, err := compat.ParseLevel(v.CompatibilityLevel)
			return string(l), err
		})
	case keyTypeMode:
		return s.applySetting(s.modes, subject, value, func(b []byte) (string, error) {
			var v modeValue
			if err := json.Unmarshal(b, &v); err != nil {
				return "", err
			}
			if v.Mode == "" {
				return "", nil
			}
			return parseMode(v.Mode)
		})
	case keyTypeDeleteSubject:
		if value == nil {
			return nil
		}
		var v deleteSubjectValue
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("%w: DELETE_SUBJECT value: %v", errSkipped, err)
		}
		if v.Subject == "" {
			v.Subject = subject
		}
		for ver, sv := range s.subjects[v.Subject] {
			if ver <= v.Version {
				sv.Deleted = true
			}
		}
		return nil
	case keyTypeClearSubject:
		if value == nil {
			return nil
		}
		var v clearSubjectValue
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("%w: CLEAR_SUBJECT value: %v", errSkipped, err)
		}
		if v.Subject == "" {
			v.Subject = subject
		}
		for subj, versions := range s.subjects {
			if v.Subject != "" && subj != v.Subject {
				continue
			}
			for ver, sv := range versions {
				if sv.Deleted {
					s.removeVersion(subj, ver)
				}
			}
		}
		return nil
	case keyTypeNoop:
		return nil
	default:
		return fmt.Errorf("%w: %w %q", errSkipped, errForeignKeyType, k.KeyType)
	}
}

func (s *state) applySetting(m map[string]string, subject string, value []byte, parse func([]byte) (string, error)) error {
	if value == nil {
		delete(m, subject)
		return nil
	}
	v, err := parse(value)
	if err != nil {
		return fmt.Errorf("%w: %v", errSkipped, err)
	}
	if v == "" {
		delete(m, subject)
	} else {
		m[subject] = v
	}
	return nil
}

func (s *state) applySchema(k recordKey, subject string, value []byte) error {
	if subject == "" || k.Version == nil || *k.Version < 1 {
		return fmt.Errorf("%w: SCHEMA key without subject or version", errSkipped)
	}
	version := *k.Version
	if value == nil {
		s.removeVersion(subject, version)
		return nil
	}
	var v schemaValue
	if err := json.Unmarshal(value, &v); err != nil {
		return fmt.Errorf("%w: SCHEMA value: %v", errSkipped, err)
	}
	if v.Subject != subject || v.Version != version || v.ID < 0 || v.Schema == "" {
		return fmt.Errorf("%w: SCHEMA value does not match its key %s/%d", errSkipped, subject, version)
	}
	typ := v.SchemaType
	if typ == schemaTypeAvro {
		typ = ""
	}
	ident := s.identityOf(v.Schema, typ, v.References, v.Metadata, v.RuleSet)
	g, ok := storedGUID(v.MD5)
	if !ok {
		g = deriveGUID(v.Schema, v.References, v.Metadata, v.RuleSet)
	}
	if e, ok := s.ids[v.ID]; ok && e.identity != ident {
		return fmt.Errorf("%w: schema id %d already belongs to another schema (record for %s version %d)",
			ErrConflict, v.ID, subject, version)
	}
	cur := s.subjects[subject][version]
	if cur != nil {
		if cur.ID != v.ID || cur.identity != ident {
			return fmt.Errorf("%w: %s version %d already holds schema id %d (record has id %d)",
				ErrConflict, subject, version, cur.ID, v.ID)
		}
		cur.Deleted = v.Deleted
		return nil
	}
	sv := &schemaVersion{
		Subject: subject, Version: version, ID: v.ID, Schema: v.Schema,
		SchemaType: typ, Refs: v.References, Metadata: v.Metadata, RuleSet: v.RuleSet,
		MD5: v.MD5, GUID: g, Deleted: v.Deleted, identity: ident,
	}
	if s.subjects[subject] == nil {
		s.subjects[subject] = map[int]*schemaVersion{}
	}
	s.subjects[subject][version] = sv
	e := s.ids[v.ID]
	if e == nil {
		e = &idEntry{schema: v.Schema, schemaType: typ, refs: v.References,
			metadata: v.Metadata, ruleSet: v.RuleSet, guid: g, identity: ident}
		s.ids[v.ID] = e
		if _, taken := s.byIdentity[ident]; !taken {
			s.byIdentity[ident] = v.ID
		}
	}
	if _, taken := s.byGUID[g]; !taken {
		s.byGUID[g] = v.ID
	}
	e.users++
	s.maxID = max(s.maxID, v.ID)
	return nil
}

// removeVersion forgets a subject version; an id no version uses any more
// is forgotten too (its number is never handed out again by this process).
func (s *state) removeVersion(subject string, version int) {
	sv := s.subjects[subject][version]
	if sv == nil {
		return
	}
	delete(s.subjects[subject], version)
	if len(s.subjects[subject]) == 0 {
		delete(s.subjects, subject)
	}
	e := s.ids[sv.ID]
	if e == nil {
		return
	}
	e.users--
	if e.users > 0 {
		return
	}
	delete(s.ids, sv.ID)
	for g, id := range s.byGUID {
		if id == sv.ID {
			delete(s.byGUID, g)
		}
	}
	if s.byIdentity[e.identity] != sv.ID {
		return
	}
	delete(s.byIdentity, e.identity)
	// Another id may hold the same schema (imported with an explicit id).
	for _, id := range slices.Sorted(maps.Keys(s.ids)) {
		if s.ids[id].identity == e.identity {
			s.byIdentity[e.identity] = id
			break
		}
	}
}

// identityOf is the key under which two schemas are the same schema: the
// type, the normalized text (see normalizeAvro), the references, the
// metadata and the rule set (which Confluent's MD5 counts too). A text
// that does not normalize (another schema type, or not valid JSON) is keyed
// by its raw text.
func (s *state) identityOf(text, typ string, refs []Reference, md *Metadata, rs *RuleSet) string {
	contract, _ := marshalJSON([]any{md.canonical(), rs.canonical()})
	return s.schemaIdentity(text, typ, refs) + "\x00" + string(contract)
}

func (s *state) schemaIdentity(text, typ string, refs []Reference) string {
	refsKey, _ := marshalJSON(refs)
	if typ == "" {
		if tree, err := s.resolveRefs(refs, 0); err == nil {
			if norm, err := normalizeAvro(text, tree); err == nil {
				return "AVRO\x00" + norm + "\x00" + string(refsKey)
			}
		}
	}
	return typ + "\x00raw\x00" + text + "\x00" + string(refsKey)
}

// resolveRefs turns references into the schema tree compat.Check and
// parseAvro take. Soft-deleted versions resolve; a missing one is an error.
func (s *state) resolveRefs(refs []Reference, depth int) ([]compat.Schema, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	if depth >= maxRefDepth {
		return nil, errors.New("references nested too deeply")
	}
	out := make([]compat.Schema, 0, len(refs))
	for _, ref := range refs {
		var sv *schemaVersion
		if ref.Version == -1 {
			sv = s.latest(ref.Subject)
		} else {
			sv = s.get(ref.Subject, ref.Version, true)
		}
		if sv == nil {
			return nil, fmt.Errorf("no schema reference found for subject %q and version %d", ref.Subject, ref.Version)
		}
		child, err := s.resolveRefs(sv.Refs, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, compat.Schema{Text: sv.Schema, References: child})
	}
	return out, nil
}

// get returns a subject version, or nil.
func (s *state) get(subject string, version int, includeDeleted bool) *schemaVersion {
	sv := s.subjects[subject][version]
	if sv == nil || (sv.Deleted && !includeDeleted) {
		return nil
	}
	return sv
}

// latest returns the newest version of subject that is not soft-deleted.
func (s *state) latest(subject string) *schemaVersion {
	var best *schemaVersion
	for _, sv := range s.subjects[subject] {
		if !sv.Deleted && (best == nil || sv.Version > best.Version) {
			best = sv
		}
	}
	return best
}

// versions returns subject's versions in ascending order, soft-deleted ones
// only when includeDeleted.
func (s *state) versions(subject string, includeDeleted bool) []*schemaVersion {
	var out []*schemaVersion
	for _, sv := range s.subjects[subject] {
		if includeDeleted || !sv.Deleted {
			out = append(out, sv)
		}
	}
	slices.SortFunc(out, func(a, b *schemaVersion) int { return a.Version - b.Version })
	return out
}

// hasSubject reports whether subject has a version (a live one unless includeDeleted).
func (s *state) hasSubject(subject string, includeDeleted bool) bool {
	for _, sv := range s.subjects[subject] {
		if includeDeleted || !sv.Deleted {
			return true
		}
	}
	return false
}

// nextVersion is one more than the highest version of subject, soft-deleted included.
func (s *state) nextVersion(subject string) int {
	n := 0
	for v := range s.subjects[subject] {
		n = max(n, v)
	}
	return n + 1
}

// compatibility is the level in force for subject: its own, else the
// global one, else BACKWARD.
func (s *state) compatibility(subject string) string {
	if l, ok := s.compat[subject]; ok && subject != "" {
		return l
	}
	if l, ok := s.compat[""]; ok {
		return l
	}
	return defaultCompatibility
}

// mode is the mode in force for subject: its own, else the global one,
// else READWRITE.
func (s *state) mode(subject string) string {
	if m, ok := s.modes[subject]; ok && subject != "" {
		return m
	}
	if m, ok := s.modes[""]; ok {
		return m
	}
	return modeReadWrite
}

func (s *state) readOnly(subject string) bool {
	m := s.mode(subject)
	return m == modeReadOnly || m == modeReadOnlyOverride
}

// referencedBy returns the ids of schemas whose references name subject
// version, in ascending order; references from soft-deleted versions count
// only when includeDeleted. subjectsOut, when not nil, collects the
// referring subjects.
func (s *state) referencedBy(subject string, version int, includeDeleted bool, subjectsOut map[string]bool) []int {
	ids := map[int]bool{}
	for _, versions := range s.subjects {
		for _, sv := range versions {
			if sv.Deleted && !includeDeleted {
				continue
			}
			for _, ref := range sv.Refs {
				if ref.Subject == subject && ref.Version == version {
					ids[sv.ID] = true
					if subjectsOut != nil {
						subjectsOut[sv.Subject] = true
					}
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(ids))
}

// subjectsForID lists the subject versions that use id, sorted.
func (s *state) subjectsForID(id int, includeDeleted bool) []*schemaVersion {
	var out []*schemaVersion
	for _, versions := range s.subjects {
		for _, sv := range versions {
			if sv.ID == id && (includeDeleted || !sv.Deleted) {
				out = append(out, sv)
			}
		}
	}
	slices.SortFunc(out, func(a, b *schemaVersion) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	return out
}

// parseMode validates a mode name (case-insensitively) and returns it upper-cased.
func parseMode(m string) (string, error) {
	switch u := strings.ToUpper(m); u {
	case modeReadWrite, modeReadOnly, modeReadOnlyOverride, modeImport:
		return u, nil
	default:
		return "", fmt.Errorf("invalid mode %q", m)
	}
}
