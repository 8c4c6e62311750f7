package compat

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
)

// maxIssues bounds the issues reported for one reader/writer pair. A named
// type referenced from many places repeats its issues at every path, which
// can grow exponentially with nesting; past the bound one note says so.
const maxIssues = 100

// issue is one incompatibility at path (dotted, relative to the node the
// resolver was checking when it found it, "" for that node itself). render
// formats it once the full path from the root is known.
type issue struct {
	path   string
	render func(path string) string
}

// pairKey identifies a reader/writer pair of named record types. Parsed
// schemas are trees of pointers, so identity is the parsed node itself; it is
// never derived from a fingerprint or canonical form.
type pairKey struct {
	r, w *avro.RecordSchema
}

// resolver walks one reader schema against one writer schema. It is used for
// a single pair and then dropped.
type resolver struct {
	// active holds the record pairs being checked further up the stack: a
	// recursive type meeting itself again is assumed to resolve, since any
	// problem in it is reported where the walk first entered it.
	active map[pairKey]bool
	// done memoizes the issues of a record pair, relative to that pair, so a
	// type referenced many times is walked once.
	done      map[pairKey][]issue
	truncated bool
}

// resolve returns every issue found when reader reads data written by writer.
func resolve(reader, writer avro.Schema) []issue {
	c := &resolver{active: make(map[pairKey]bool), done: make(map[pairKey][]issue)}
	out := c.check(reader, writer)
	if c.truncated {
		out = append(out, issue{render: func(string) string {
			return fmt.Sprintf("further incompatibilities not listed (limit %d)", maxIssues)
		}})
	}
	return out
}

// add appends more to out up to maxIssues.
func (c *resolver) add(out []issue, more ...issue) []issue {
	for _, is := range more {
		if len(out) >= maxIssues {
			c.truncated = true
			return out
		}
		out = append(out, is)
	}
	return out
}

func (c *resolver) check(r, w avro.Schema) []issue {
	r, w = deref(r), deref(w)
	if wu, ok := w.(*avro.UnionSchema); ok {
		return c.writerUnion(r, wu)
	}
	if ru, ok := r.(*avro.UnionSchema); ok {
		j := selectBranch(ru, w)
		if j < 0 {
			return []issue{at("writer type %s matches no branch of reader union %s", describe(w), describe(ru))}
		}
		return c.check(ru.Types()[j], w)
	}
	if r.Type() != w.Type() {
		if promotable(w.Type(), r.Type()) {
			return nil
		}
		return []issue{mismatch(r, w)}
	}
	switch rs := r.(type) {
	case *avro.RecordSchema:
		ws, ok := w.(*avro.RecordSchema)
		if !ok {
			return []issue{mismatch(r, w)}
		}
		return c.record(rs, ws)
	case *avro.EnumSchema:
		ws, ok := w.(*avro.EnumSchema)
		if !ok {
			return []issue{mismatch(r, w)}
		}
		return enum(rs, ws)
	case *avro.FixedSchema:
		ws, ok := w.(*avro.FixedSchema)
		if !ok {
			return []issue{mismatch(r, w)}
		}
		if !namesMatch(rs, ws, false) {
			return []issue{nameMismatch(rs, ws)}
		}
		if rs.Size() != ws.Size() {
			return []issue{at("reader fixed %q has size %d but writer fixed %q has size %d", rs.FullName(), rs.Size(), ws.FullName(), ws.Size())}
		}
		return decimal(rs.Logical(), ws.Logical())
	case *avro.ArraySchema:
		ws, ok := w.(*avro.ArraySchema)
		if !ok {
			return []issue{mismatch(r, w)}
		}
		return prefix("items", c.check(rs.Items(), ws.Items()))
	case *avro.MapSchema:
		ws, ok := w.(*avro.MapSchema)
		if !ok {
			return []issue{mismatch(r, w)}
		}
		return prefix("values", c.check(rs.Values(), ws.Values()))
	case *avro.PrimitiveSchema:
		ws, ok := w.(*avro.PrimitiveSchema)
		if !ok {
			return []issue{mismatch(r, w)}
		}
		return decimal(rs.Logical(), ws.Logical())
	}
	// null, boolean and the rest match their own type.
	return nil
}

// writerUnion: every writer branch must resolve, against the reader's
// selected branch when the reader is a union, else against the reader itself.
func (c *resolver) writerUnion(r avro.Schema, wu *avro.UnionSchema) []issue {
	var out []issue
	ru, readerIsUnion := r.(*avro.UnionSchema)
	for i, wb := range wu.Types() {
		wb = deref(wb)
		if readerIsUnion {
			j := selectBranch(ru, wb)
			if j < 0 {
				out = c.add(out, at("writer union branch %d (%s) matches no branch of reader union %s", i, describe(wb), describe(ru)))
				continue
			}
			out = c.add(out, c.check(ru.Types()[j], wb)...)
			continue
		}
		if r.Type() != wb.Type() && !promotable(wb.Type(), r.Type()) {
			out = c.add(out, at("reader type %s cannot read writer union branch %d (%s)", describe(r), i, describe(wb)))
			continue
		}
		out = c.add(out, c.check(r, wb)...)
	}
	return out
}

func (c *resolver) record(r, w *avro.RecordSchema) []issue {
	if !namesMatch(r, w, false) {
		return []issue{nameMismatch(r, w)}
	}
	key := pairKey{r, w}
	if c.active[key] {
		return nil
	}
	if out, ok := c.done[key]; ok {
		return out
	}
	c.active[key] = true
	defer delete(c.active, key)

	rFields := r.Fields()
	byName := make(map[string]int, len(rFields))
	byAlias := make(map[string]int)
	for i, f := range rFields {
		byName[f.Name()] = i
	}
	for i, f := range rFields {
		for _, a := range f.Aliases() {
			if _, taken := byAlias[a]; !taken {
				byAlias[a] = i
			}
		}
	}

	var out []issue
	// Each writer field goes to the reader field of its name, else to the
	// reader field with that alias. Two writer fields landing on one reader
	// field leave the reader no single value to take.
	matched := make([]*avro.Field, len(rFields))
	for _, wf := range w.Fields() {
		i, ok := byName[wf.Name()]
		if !ok {
			i, ok = byAlias[wf.Name()]
		}
		if !ok {
			continue // the reader skips writer fields it does not have
		}
		if prev := matched[i]; prev != nil {
			out = c.add(out, at("writer fields %q and %q both resolve to reader field %q", prev.Name(), wf.Name(), rFields[i].Name()).under(rFields[i].Name()))
			continue
		}
		matched[i] = wf
	}
	for i, rf := range rFields {
		wf := matched[i]
		if wf == nil {
			if !rf.HasDefault() {
				out = c.add(out, issue{path: rf.Name(), render: func(p string) string {
					return fmt.Sprintf("reader field %s has no default and is missing in writer", showPath(p))
				}})
			}
			continue
		}
		out = c.add(out, prefix(rf.Name(), c.check(rf.Type(), wf.Type()))...)
	}
	c.done[key] = out
	return out
}

func enum(r, w *avro.EnumSchema) []issue {
	if !namesMatch(r, w, false) {
		return []issue{nameMismatch(r, w)}
	}
	if r.HasDefault() {
		return nil
	}
	var missing []string
	for _, s := range w.Symbols() {
		if !slices.Contains(r.Symbols(), s) {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []issue{at("writer enum %q symbols %q are not in reader enum %q, which has no default", w.FullName(), missing, r.FullName())}
}

// decimal applies the specification's one logical-type rule: two decimals
// match only with equal precision and scale. Every other logical type
// resolves as its underlying type.
func decimal(r, w avro.LogicalSchema) []issue {
	rd, rok := r.(*avro.DecimalLogicalSchema)
	wd, wok := w.(*avro.DecimalLogicalSchema)
	if !rok || !wok {
		return nil
	}
	if rd.Precision() != wd.Precision() || rd.Scale() != wd.Scale() {
		return []issue{at("reader decimal(%d,%d) cannot read writer decimal(%d,%d)", rd.Precision(), rd.Scale(), wd.Precision(), wd.Scale())}
	}
	return nil
}

// prefix returns copies of issues with seg put in front of their paths; the
// originals may be memoized and are not changed.
func prefix(seg string, issues []issue) []issue {
	if len(issues) == 0 {
		return nil
	}
	out := make([]issue, 0, len(issues))
	for _, is := range issues {
		out = append(out, is.under(seg))
	}
	return out
}

func (is issue) under(seg string) issue {
	switch {
	case is.path == "":
		is.path = seg
	case seg != "":
		is.path = seg + "." + is.path
	}
	return is
}

// at builds an issue located at the node being checked.
func at(format string, args ...any) issue {
	msg := fmt.Sprintf(format, args...)
	return issue{render: func(p string) string { return "at " + showPath(p) + ": " + msg }}
}

func mismatch(r, w avro.Schema) issue {
	return at("reader type %s cannot read writer type %s", describe(r), describe(w))
}

func nameMismatch(r, w avro.NamedSchema) issue {
	return at("reader %s does not match writer %s by name or alias", describe(r), describe(w))
}

func showPath(p string) string {
	if p == "" {
		return "(root)"
	}
	return fmt.Sprintf("%q", p)
}

func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

// promotable reports whether the specification lets a reader of type r read
// data written as w.
func promotable(w, r avro.Type) bool {
	switch w {
	case avro.Int:
		return r == avro.Long || r == avro.Float || r == avro.Double
	case avro.Long:
		return r == avro.Float || r == avro.Double
	case avro.Float:
		return r == avro.Double
	case avro.String:
		return r == avro.Bytes
	case avro.Bytes:
		return r == avro.String
	}
	return false
}

// namesMatch reports whether reader type r answers to writer type w: same
// full name or a reader alias naming w; unless exact, also the same
// unqualified name (the specification compares unqualified names) or an
// alias with w's unqualified name.
func namesMatch(r, w avro.NamedSchema, exact bool) bool {
	if r.FullName() == w.FullName() || slices.Contains(r.Aliases(), w.FullName()) {
		return true
	}
	if exact {
		return false
	}
	if r.Name() == w.Name() {
		return true
	}
	for _, a := range r.Aliases() {
		if unqualified(a) == w.Name() {
			return true
		}
	}
	return false
}

func unqualified(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// selectBranch returns the index of the first reader union branch that
// matches writer type w (not a union), or -1. Ranks, best first: same type
// and full name or alias (size too for fixed); same unqualified name; a
// promotion. Within a rank the first branch wins, as the specification says.
func selectBranch(ru *avro.UnionSchema, w avro.Schema) int {
	branches := ru.Types()
	for _, exact := range []bool{true, false} {
		for i, rb := range branches {
			if sameShape(deref(rb), w, exact) {
				return i
			}
		}
	}
	for i, rb := range branches {
		if promotable(w.Type(), deref(rb).Type()) {
			return i
		}
	}
	return -1
}

// sameShape: same type and, for named types, matching names (and size for
// fixed). An unnamed type only matches in the exact rank.
func sameShape(r, w avro.Schema, exact bool) bool {
	if r.Type() != w.Type() {
		return false
	}
	rn, rNamed := r.(avro.NamedSchema)
	wn, wNamed := w.(avro.NamedSchema)
	if !rNamed || !wNamed {
		return exact && !rNamed && !wNamed
	}
	if !namesMatch(rn, wn, exact) {
		return false
	}
	if rf, ok := r.(*avro.FixedSchema); ok {
		wf, ok := w.(*avro.FixedSchema)
		return ok && rf.Size() == wf.Size()
	}
	return true
}

// describe names a type for a message: its kind, a named type's full name,
// a logical type.
func describe(s avro.Schema) string {
	switch t := deref(s).(type) {
	case *avro.RecordSchema:
		return fmt.Sprintf("record %q", t.FullName())
	case *avro.EnumSchema:
		return fmt.Sprintf("enum %q", t.FullName())
	case *avro.FixedSchema:
		return fmt.Sprintf("fixed %q (size %d)", t.FullName(), t.Size())
	case *avro.PrimitiveSchema:
		if l := logicalName(t.Logical()); l != "" {
			return fmt.Sprintf("%s (%s)", t.Type(), l)
		}
		return string(t.Type())
	case *avro.UnionSchema:
		parts := make([]string, 0, len(t.Types()))
		for _, b := range t.Types() {
			parts = append(parts, describe(b))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case nil:
		return "<none>"
	default:
		return string(t.Type())
	}
}

func logicalName(l avro.LogicalSchema) string {
	if l == nil {
		return ""
	}
	if d, ok := l.(*avro.DecimalLogicalSchema); ok {
		return fmt.Sprintf("decimal(%d,%d)", d.Precision(), d.Scale())
	}
	return string(l.Type())
}
