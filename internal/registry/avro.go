package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// schemaTypeAvro is the only schema type this registry validates. Records of
// other types read from the store topic are served as they are.
const schemaTypeAvro = "AVRO"

// maxSchemaDepth bounds JSON nesting and reference chains so hostile input
// cannot exhaust the stack.
const maxSchemaDepth = 256

var errNotAvro = errors.New("not an Avro schema")

// parseAvro validates s with hamba/avro: its references are parsed first,
// depth-first, into a SchemaCache private to this call (never the global
// one), then s.Text into the same cache.
func parseAvro(s compat.Schema) (sch avro.Schema, err error) {
	defer func() {
		// hamba/avro is not fuzzed against every input shape; a panic in it
		// must become an invalid-schema answer, never a crashed request.
		if p := recover(); p != nil {
			sch, err = nil, fmt.Errorf("schema parser failed: %v", p)
		}
	}()
	cache := &avro.SchemaCache{}
	if err := parseRefsInto(cache, s.References, 0, map[string]bool{}); err != nil {
		return nil, err
	}
	return avro.ParseWithCache(s.Text, "", cache)
}

func parseRefsInto(cache *avro.SchemaCache, refs []compat.Schema, depth int, done map[string]bool) error {
	if len(refs) > 0 && depth >= maxSchemaDepth {
		return errors.New("references nested too deeply")
	}
	for _, ref := range refs {
		if done[ref.Text] {
			continue
		}
		if err := parseRefsInto(cache, ref.References, depth+1, done); err != nil {
			return err
		}
		if _, err := avro.ParseWithCache(ref.Text, "", cache); err != nil {
			return fmt.Errorf("reference: %w", err)
		}
		done[ref.Text] = true
	}
	return nil
}

// normalizeAvro renders an Avro schema in a deterministic compact JSON form
// that keeps everything that gives a schema its meaning (names, defaults,
// docs, aliases, order, logical types, custom properties) and drops what
// does not (whitespace, attribute order, how a name is qualified, the
// ascending field order, the object form of a bare primitive):
//
//   - every named type and name reference is written fully qualified and the
//     namespace attribute is dropped;
//   - attributes come in a fixed order (name, type, then the type's own
//     attributes), other properties sorted by key;
//   - default and property values are re-encoded with sorted object keys,
//     numbers keep their literal text.
//
// Two schemas that normalize to the same text are the same schema for the
// registry (it is what "the same schema" means on register and lookup), and
// it is the text stored for a register call with normalize=true. Names
// defined by refs (depth-first) resolve unqualified references the way the
// Avro parser does: the enclosing namespace first, then the null namespace.
func normalizeAvro(text string, refs []compat.Schema) (string, error) {
	n := &normalizer{known: map[string]bool{}}
	done := map[string]bool{}
	if err := n.learnRefs(refs, 0, done); err != nil {
		return "", err
	}
	n.buf.Reset()
	if err := n.schemaText(text); err != nil {
		return "", err
	}
	return n.buf.String(), nil
}

type normalizer struct {
	buf   bytes.Buffer
	known map[string]bool
	depth int
}

func (n *normalizer) learnRefs(refs []compat.Schema, depth int, done map[string]bool) error {
	if len(refs) > 0 && depth >= maxSchemaDepth {
		return errors.New("references nested too deeply")
	}
	for _, ref := range refs {
		if done[ref.Text] {
			continue
		}
		done[ref.Text] = true
		if err := n.learnRefs(ref.References, depth+1, done); err != nil {
			return err
		}
		if err := n.schemaText(ref.Text); err != nil {
			return fmt.Errorf("reference: %w", err)
		}
	}
	return nil
}

func (n *normalizer) schemaText(text string) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: %v", errNotAvro, err)
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("%w: trailing data after the schema", errNotAvro)
	}
	return n.typ(v, "")
}

func isPrimitive(name string) bool {
	switch name {
	case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
		return true
	}
	return false
}

func (n *normalizer) typ(v any, ns string) error {
	n.depth++
	defer func() { n.depth-- }()
	if n.depth > maxSchemaDepth {
		return fmt.Errorf("%w: nested too deeply", errNotAvro)
	}
	switch t := v.(type) {
	case string:
		if isPrimitive(t) {
			n.str(t)
		} else {
			n.str(n.resolve(t, ns))
		}
		return nil
	case []any:
		n.buf.WriteByte('[')
		for i, b := range t {
			if i > 0 {
				n.buf.WriteByte(',')
			}
			if err := n.typ(b, ns); err != nil {
				return err
			}
		}
		n.buf.WriteByte(']')
		return nil
	case map[string]any:
		return n.object(t, ns)
	default:
		return fmt.Errorf("%w: %v is not a type", errNotAvro, v)
	}
}

func (n *normalizer) object(m map[string]any, ns string) error {
	tv, ok := m["type"]
	if !ok {
		return fmt.Errorf("%w: object without \"type\"", errNotAvro)
	}
	ts, isString := tv.(string)
	if !isString {
		n.buf.WriteString(`{"type":`)
		if err := n.typ(tv, ns); err != nil {
			return err
		}
		return n.props(m, "type")
	}
	switch ts {
	case "record", "error":
		return n.record(m, ts, ns)
	case "enum":
		return n.named(m, ts, ns, func(string) error {
			syms, ok := m["symbols"].([]any)
			if !ok {
				return fmt.Errorf("%w: enum without symbols", errNotAvro)
			}
			n.buf.WriteString(`,"symbols":`)
			if err := n.value(syms); err != nil {
				return err
			}
			if d, ok := m["default"]; ok {
				n.buf.WriteString(`,"default":`)
				return n.value(d)
			}
			return nil
		}, "symbols", "default")
	case "fixed":
		return n.named(m, ts, ns, func(string) error {
			size, ok := m["size"]
			if !ok {
				return fmt.Errorf("%w: fixed without size", errNotAvro)
			}
			n.buf.WriteString(`,"size":`)
			return n.value(size)
		}, "size")
	case "array", "map":
		attr := "items"
		if ts == "map" {
			attr = "values"
		}
		inner, ok := m[attr]
		if !ok {
			return fmt.Errorf("%w: %s without %s", errNotAvro, ts, attr)
		}
		n.buf.WriteString(`{"type":"` + ts + `","` + attr + `":`)
		if err := n.typ(inner, ns); err != nil {
			return err
		}
		return n.props(m, "type", attr)
	default:
		name := ts
		if !isPrimitive(ts) {
			name = n.resolve(ts, ns)
		}
		if len(m) == 1 {
			n.str(name)
			return nil
		}
		n.buf.WriteString(`{"type":`)
		n.str(name)
		return n.props(m, "type")
	}
}

// named writes a record, enum or fixed: name, type, body, doc, aliases,
// then the remaining properties. body receives the type's namespace.
func (n *normalizer) named(m map[string]any, ts, ns string, body func(ns string) error, bodyAttrs ...string) error {
	name, ok := m["name"].(string)
	if !ok || name == "" {
		return fmt.Errorf("%w: %s without a name", errNotAvro, ts)
	}
	full, typeNS := fullName(name, m["namespace"], ns)
	n.known[full] = true
	n.buf.WriteString(`{"name":`)
	n.str(full)
	n.buf.WriteString(`,"type":"` + ts + `"`)
	if err := body(typeNS); err != nil {
		return err
	}
	if doc, ok := m["doc"]; ok {
		n.buf.WriteString(`,"doc":`)
		if err := n.value(doc); err != nil {
			return err
		}
	}
	if aliases, ok := m["aliases"].([]any); ok {
		qualified := make([]string, 0, len(aliases))
		for _, a := range aliases {
			s, ok := a.(string)
			if !ok {
				return fmt.Errorf("%w: alias %v is not a string", errNotAvro, a)
			}
			if !strings.Contains(s, ".") && typeNS != "" {
				s = typeNS + "." + s
			}
			qualified = append(qualified, s)
		}
		slices.Sort(qualified)
		n.buf.WriteString(`,"aliases":`)
		n.strs(qualified)
	}
	skip := append([]string{"name", "namespace", "type", "doc", "aliases"}, bodyAttrs...)
	return n.props(m, skip...)
}

func (n *normalizer) record(m map[string]any, ts, ns string) error {
	return n.named(m, ts, ns, func(typeNS string) error {
		fields, ok := m["fields"].([]any)
		if !ok {
			return fmt.Errorf("%w: record without fields", errNotAvro)
		}
		n.buf.WriteString(`,"fields":[`)
		for i, f := range fields {
			if i > 0 {
				n.buf.WriteByte(',')
			}
			fm, ok := f.(map[string]any)
			if !ok {
				return fmt.Errorf("%w: field %d is not an object", errNotAvro, i)
			}
			if err := n.field(fm, typeNS); err != nil {
				return err
			}
		}
		n.buf.WriteByte(']')
		return nil
	}, "fields")
}

func (n *normalizer) field(m map[string]any, ns string) error {
	name, ok := m["name"].(string)
	if !ok {
		return fmt.Errorf("%w: field without a name", errNotAvro)
	}
	ft, ok := m["type"]
	if !ok {
		return fmt.Errorf("%w: field %q without a type", errNotAvro, name)
	}
	n.buf.WriteString(`{"name":`)
	n.str(name)
	n.buf.WriteString(`,"type":`)
	if err := n.typ(ft, ns); err != nil {
		return err
	}
	if o, ok := m["order"]; ok && o != "ascending" {
		n.buf.WriteString(`,"order":`)
		if err := n.value(o); err != nil {
			return err
		}
	}
	if doc, ok := m["doc"]; ok {
		n.buf.WriteString(`,"doc":`)
		if err := n.value(doc); err != nil {
			return err
		}
	}
	if aliases, ok := m["aliases"].([]any); ok {
		as := make([]string, 0, len(aliases))
		for _, a := range aliases {
			s, ok := a.(string)
			if !ok {
				return fmt.Errorf("%w: alias %v is not a string", errNotAvro, a)
			}
			as = append(as, s)
		}
		slices.Sort(as)
		n.buf.WriteString(`,"aliases":`)
		n.strs(as)
	}
	if d, ok := m["default"]; ok {
		n.buf.WriteString(`,"default":`)
		if err := n.value(d); err != nil {
			return err
		}
	}
	return n.props(m, "name", "type", "order", "doc", "aliases", "default")
}

// props writes the attributes of m not in skip, sorted by key, and closes
// the object.
func (n *normalizer) props(m map[string]any, skip ...string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(skip, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		n.buf.WriteByte(',')
		n.str(k)
		n.buf.WriteByte(':')
		if err := n.value(m[k]); err != nil {
			return err
		}
	}
	n.buf.WriteByte('}')
	return nil
}

// value writes a JSON value with sorted object keys; numbers keep their text.
func (n *normalizer) value(v any) error {
	n.depth++
	defer func() { n.depth-- }()
	if n.depth > maxSchemaDepth {
		return fmt.Errorf("%w: nested too deeply", errNotAvro)
	}
	switch t := v.(type) {
	case nil:
		n.buf.WriteString("null")
	case bool:
		if t {
			n.buf.WriteString("true")
		} else {
			n.buf.WriteString("false")
		}
	case json.Number:
		n.buf.WriteString(t.String())
	case string:
		n.str(t)
	case []any:
		n.buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				n.buf.WriteByte(',')
			}
			if err := n.value(e); err != nil {
				return err
			}
		}
		n.buf.WriteByte(']')
	case map[string]any:
		n.buf.WriteByte('{')
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				n.buf.WriteByte(',')
			}
			n.str(k)
			n.buf.WriteByte(':')
			if err := n.value(t[k]); err != nil {
				return err
			}
		}
		n.buf.WriteByte('}')
	default:
		return fmt.Errorf("%w: unexpected JSON value %T", errNotAvro, v)
	}
	return nil
}

func (n *normalizer) str(s string) {
	b, _ := marshalJSON(s)
	n.buf.Write(b)
}

func (n *normalizer) strs(ss []string) {
	b, _ := marshalJSON(ss)
	n.buf.Write(b)
}

// resolve qualifies a name reference the way the Avro parser looks it up:
// a dotted name is already full; otherwise the enclosing namespace, falling
// back to the null namespace when only that defines the name.
func (n *normalizer) resolve(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	qualified := ns + "." + name
	if !n.known[qualified] && n.known[name] {
		return name
	}
	return qualified
}

// fullName applies the Avro naming rules to a named type definition and
// returns its full name and the namespace its own references resolve in.
func fullName(name string, nsAttr any, enclosing string) (full, ns string) {
	if i := strings.LastIndex(name, "."); i >= 0 {
		return name, name[:i]
	}
	ns = enclosing
	if s, ok := nsAttr.(string); ok { // "" is the null namespace; JSON null means absent
		ns = s
	}
	if ns == "" {
		return name, ""
	}
	return ns + "." + name, ns
}
