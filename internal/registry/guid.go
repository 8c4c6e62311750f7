package registry

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Metadata is a schema version's data-contract metadata, as Confluent
// stores and answers it: tags per field path, free-form properties and the
// names of sensitive properties. Pyrite keeps and returns it; it runs no rules.
type Metadata struct {
	Tags       map[string][]string `json:"tags,omitempty"`
	Properties map[string]string   `json:"properties,omitempty"`
	Sensitive  []string            `json:"sensitive,omitempty"`
}

// RuleSet is a schema version's data-contract rules, kept and returned as
// sent (Pyrite runs none of them).
type RuleSet struct {
	MigrationRules []Rule `json:"migrationRules,omitempty"`
	DomainRules    []Rule `json:"domainRules,omitempty"`
	EncodingRules  []Rule `json:"encodingRules,omitempty"`
	EnableAt       string `json:"enableAt,omitempty"`
}

// Rule is one data-contract rule.
type Rule struct {
	Name      string            `json:"name,omitempty"`
	Doc       string            `json:"doc,omitempty"`
	Kind      string            `json:"kind,omitempty"`
	Mode      string            `json:"mode,omitempty"`
	Type      string            `json:"type,omitempty"`
	Tags      []string          `json:"tags,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	Expr      string            `json:"expr,omitempty"`
	OnSuccess string            `json:"onSuccess,omitempty"`
	OnFailure string            `json:"onFailure,omitempty"`
	Disabled  bool              `json:"disabled,omitempty"`
}

// sortedSet sorts and deduplicates s, as the sorted sets Confluent keeps
// tags and sensitive names in; nil stays nil.
func sortedSet(s []string) []string {
	if s == nil {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// canonical returns m with its sets sorted and deduplicated (nil for nil).
func (m *Metadata) canonical() *Metadata {
	if m == nil {
		return nil
	}
	out := &Metadata{Properties: maps.Clone(m.Properties), Sensitive: sortedSet(m.Sensitive)}
	if m.Tags != nil {
		out.Tags = make(map[string][]string, len(m.Tags))
		for k, v := range m.Tags {
			out.Tags[k] = sortedSet(v)
		}
	}
	return out
}

// canonical returns rs with every rule's tags sorted and deduplicated.
func (rs *RuleSet) canonical() *RuleSet {
	if rs == nil {
		return nil
	}
	fix := func(rules []Rule) []Rule {
		if rules == nil {
			return nil
		}
		out := slices.Clone(rules)
		for i := range out {
			out[i].Tags = sortedSet(out[i].Tags)
			out[i].Params = maps.Clone(out[i].Params)
		}
		return out
	}
	return &RuleSet{MigrationRules: fix(rs.MigrationRules), DomainRules: fix(rs.DomainRules),
		EncodingRules: fix(rs.EncodingRules), EnableAt: rs.EnableAt}
}

// guid is a schema's 16-byte MD5, shown as a UUID: Confluent's schema GUID.
type guid [16]byte

// String formats g as Confluent does (java.util.UUID of the MD5's two halves).
func (g guid) String() string { return uuid.UUID(g).String() }

// parseGUID reads a GUID as Confluent's MD5.fromString does: a UUID, or else
// 32 hex digits.
func parseGUID(s string) (guid, bool) {
	var g guid
	h := s
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		h = strings.ReplaceAll(s, "-", "")
	}
	if len(h) != 32 {
		return g, false
	}
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return g, false
	}
	return g, true
}

// storedGUID decodes the "md5" field of a SCHEMA record (base64 of the 16
// bytes): when a record carries one, Confluent uses it instead of deriving.
func storedGUID(s string) (guid, bool) {
	var g guid
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(g) {
		return g, false
	}
	copy(g[:], b)
	return g, true
}

// deriveGUID is Confluent's MD5.ofSchema: the MD5 of the schema text, then
// each reference's name, subject and big-endian 4-byte version, then, when
// present, a 1 byte and the metadata (tags by key with their sorted values,
// properties by key, sorted sensitive names), then, when present, a 1 byte
// and the rule set (every rule's fields in order, then enableAt).
func deriveGUID(text string, refs []Reference, md *Metadata, rs *RuleSet) guid {
	h := md5.New()
	h.Write([]byte(text))
	for _, r := range refs {
		h.Write([]byte(r.Name))
		h.Write([]byte(r.Subject))
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(int32(r.Version))))
	}
	if md != nil {
		md = md.canonical()
		h.Write([]byte{1})
		for _, k := range slices.Sorted(maps.Keys(md.Tags)) {
			h.Write([]byte(k))
			for _, v := range md.Tags[k] {
				h.Write([]byte(v))
			}
		}
		writeSortedMap(h, md.Properties)
		for _, s := range md.Sensitive {
			h.Write([]byte(s))
		}
	}
	if rs != nil {
		rs = rs.canonical()
		h.Write([]byte{1})
		for _, rules := range [][]Rule{rs.MigrationRules, rs.DomainRules, rs.EncodingRules} {
			for _, r := range rules {
				r.hash(h)
			}
		}
		h.Write([]byte(rs.EnableAt))
	}
	var g guid
	h.Sum(g[:0])
	return g
}

func (r Rule) hash(h hash.Hash) {
	for _, s := range []string{r.Name, r.Doc, r.Kind, r.Mode, r.Type} {
		h.Write([]byte(s))
	}
	for _, t := range r.Tags {
		h.Write([]byte(t))
	}
	writeSortedMap(h, r.Params)
	for _, s := range []string{r.Expr, r.OnSuccess, r.OnFailure} {
		h.Write([]byte(s))
	}
	if r.Disabled {
		h.Write([]byte{1})
	}
}

func writeSortedMap(h hash.Hash, m map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		h.Write([]byte(k))
		h.Write([]byte(m[k]))
	}
}
