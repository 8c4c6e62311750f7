package codec

import (
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pyrite-dev/pyrite/internal/jsonscan"
)

// JSONObject is a parsed JSON object: its members in document order, duplicates included.
type JSONObject struct {
	Members []JSONMember
}

// JSONMember is one key and value of a JSONObject.
type JSONMember struct {
	Key   string
	Value any
}

// maxJSONNesting is how deeply ParseJSON lets arrays and objects nest: encoding/json's limit,
// so that ParseJSON accepts exactly what json.Valid accepts.
const maxJSONNesting = 10000

// ParseJSON parses one JSON document in a single pass over data. It accepts exactly the inputs
// json.Valid accepts (RFC 8259; arrays and objects nested at most 10000 deep; whitespace
// around the value) and returns the tree FromJSONValue takes:
//
//   - null as nil, true and false as bool, numbers as json.Number (the literal's text),
//   - strings as string, decoded as encoding/json decodes them: invalid UTF-8 and unpaired
//     surrogate escapes become U+FFFD,
//   - arrays as []any (never nil), objects as *JSONObject with every member in document
//     order, duplicate keys included.
//
// The tree does not share memory with data, but its parts share memory with each other (one
// copy of data's text, and blocks of containers): a part kept alive keeps all of it. The
// error, for malformed input, wraps no sentinel and gives the byte offset of the first fault.
func ParseJSON(data []byte) (any, error) {
	// Size the first blocks for the document: an object takes at least 2 bytes of text, a
	// member or element at least 2 ("1,"); most take many more.
	p := jsonParser{
		data:       data,
		text:       string(data),
		members:    make([]JSONMember, 0, 8),
		objects:    newSlab[JSONObject](len(data) / 32),
		memberMem:  newSlab[JSONMember](len(data) / 16),
		elementMem: newSlab[any](len(data) / 16),
	}
	v, ok := p.value()
	if ok {
		p.skipSpace()
		if p.pos == len(data) {
			return v, nil
		}
	}
	return nil, fmt.Errorf("invalid JSON at byte offset %d", p.pos)
}

// jsonParser is the state of one ParseJSON call. On failure pos is where parsing stopped.
type jsonParser struct {
	data  []byte
	text  string // data as a string: keys, plain strings and numbers are slices of it
	pos   int
	depth int

	// Stacks of the members and elements of the objects and arrays being parsed: a
	// container's own slice is taken, at its exact size, when it ends.
	members []JSONMember
	elems   []any
	buf     []byte // scratch for strings with escapes or invalid UTF-8

	objects    slab[JSONObject]
	memberMem  slab[JSONMember]
	elementMem slab[any]

	// short holds recently parsed short strings and numbers as the interface values the tree
	// holds, so that the many equal values of a document (a batch of events of one shape)
	// share one.
	short [64]any
}

// maxShared is the longest string or number literal the short cache holds.
const maxShared = 64

// slot hashes a non-empty s into a cache of 64 entries.
func slot(s string) uint {
	return (uint(len(s))*7 + uint(s[0]) + uint(s[len(s)-1])*31) % 64
}

// slab hands out consecutive pieces of larger arrays, so that the many small containers of
// a document take a few allocations. Pieces are capped: appending to one never writes into
// another.
type slab[T any] struct {
	free []T
	next int // length of the next array: doubling up to maxSlab
}

const maxSlab = 1024

// newSlab returns a slab whose first array holds about n pieces.
func newSlab[T any](n int) slab[T] { return slab[T]{next: min(max(n, 2), maxSlab)} }

func (s *slab[T]) take(n int) []T {
	if n > len(s.free) {
		if n > maxSlab/4 {
			return make([]T, n)
		}
		size := max(s.next, n)
		s.next = min(2*size, maxSlab)
		s.free = make([]T, size)
	}
	t := s.free[:n:n]
	s.free = s.free[n:]
	return t
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses the value at pos (after optional whitespace).
func (p *jsonParser) value() (any, bool) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		str, ok := p.str()
		if !ok {
			return nil, false
		}
		return p.shared(str), true
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *jsonParser) literal(word string) bool {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return false
	}
	p.pos += len(word)
	return true
}

func (p *jsonParser) enter() bool {
	p.depth++
	p.pos++ // the opening bracket
	return p.depth <= maxJSONNesting
}

func (p *jsonParser) object() (any, bool) {
	if !p.enter() {
		return nil, false
	}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return &p.objects.take(1)[0], true
	}
	base := len(p.members)
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, false
		}
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, false
		}
		p.pos++
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		p.members = append(p.members, JSONMember{Key: k, Value: v})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, false
		}
		c := p.data[p.pos]
		p.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			p.pos--
			return nil, false
		}
	}
	obj := &p.objects.take(1)[0]
	obj.Members = p.memberMem.take(len(p.members) - base)
	copy(obj.Members, p.members[base:])
	clear(p.members[base:]) // the scratch must not keep the values alive
	p.members = p.members[:base]
	p.depth--
	return obj, true
}

func (p *jsonParser) array() (any, bool) {
	if !p.enter() {
		return nil, false
	}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return []any{}, true
	}
	base := len(p.elems)
	for {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		p.elems = append(p.elems, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, false
		}
		c := p.data[p.pos]
		p.pos++
		if c == ']' {
			break
		}
		if c != ',' {
			p.pos--
			return nil, false
		}
	}
	arr := p.elementMem.take(len(p.elems) - base)
	copy(arr, p.elems[base:])
	clear(p.elems[base:])
	p.elems = p.elems[:base]
	p.depth--
	return arr, true
}

// number parses a number literal (jsonscan.NumberEnd) into a json.Number.
func (p *jsonParser) number() (any, bool) {
	start := p.pos
	end, ok := jsonscan.NumberEnd(p.text, start)
	p.pos = end
	if !ok {
		return nil, false
	}
	lit := p.text[start:end]
	if len(lit) > maxShared {
		return json.Number(lit), true
	}
	c := &p.short[slot(lit)]
	if n, ok := (*c).(json.Number); !ok || string(n) != lit {
		*c = json.Number(lit)
	}
	return *c, true
}

// str parses the string at pos (its opening quote): a plain string (no escapes, valid
// UTF-8) is a slice of text, others are decoded into a new string.
func (p *jsonParser) str() (string, bool) {
	start := p.pos + 1
	i := jsonscan.PlainEnd(p.text, start)
	switch {
	case i == len(p.data):
		p.pos = i
		return "", false
	case p.data[i] == '"':
		p.pos = i + 1
		return p.text[start:i], true
	}
	return p.decodeStr(start, i)
}

// shared returns s in an interface, the one of an earlier equal short string if the cache
// holds it.
func (p *jsonParser) shared(s string) any {
	if len(s) == 0 || len(s) > maxShared {
		return s
	}
	c := &p.short[slot(s)]
	if cs, ok := (*c).(string); !ok || cs != s {
		*c = s
	}
	return *c
}

// decodeStr decodes the string whose content starts at start, from i (the first byte that is
// not plain) on: escapes are resolved and invalid UTF-8 becomes U+FFFD, as encoding/json
// does. Control characters and malformed escapes fail.
func (p *jsonParser) decodeStr(start, i int) (string, bool) {
	d := p.data
	b := append(p.buf[:0], d[start:i]...)
	defer func() { p.buf = b[:0] }()
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(b), true
		case c < ' ':
			p.pos = i
			return "", false
		case c == '\\':
			if i+1 >= len(d) {
				p.pos = i + 1
				return "", false
			}
			i += 2
			switch d[i-1] {
			case '"', '\\', '/':
				b = append(b, d[i-1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(d, i)
				if !ok {
					p.pos = i
					return "", false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A high surrogate and an escaped low one make one rune; any other
					// surrogate stands for U+FFFD, and what follows it is read on its own.
					r2, ok := rune(0), false
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						r2, ok = hex4(d, i+2)
					}
					if pair := utf16.DecodeRune(r, r2); ok && pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				p.pos = i - 1
				return "", false
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, d[i:i+size]...)
			}
			i += size
		}
	}
	p.pos = i
	return "", false
}

// hex4 reads the four hex digits at d[i:].
func hex4(d []byte, i int) (rune, bool) {
	if len(d)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
