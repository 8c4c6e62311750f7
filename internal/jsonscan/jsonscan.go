// Package jsonscan reads JSON text in place, for the fast paths of ingest and the codec that
// turn the common shape of an event straight into what they need, without building a tree.
//
// A Scanner accepts a strict subset of JSON: strings without escapes (valid UTF-8, no control
// characters), numbers as RFC 8259 writes them, literals, and objects nested at most MaxDepth
// levels whose strings are plain too; it does not read arrays. Whatever it does not accept,
// valid JSON or not, it reports as false, and the caller then hands the whole input to the
// general path (codec.ParseJSON and what follows), which gives the answer and the errors.
// Everything it accepts is valid JSON and means what it means to encoding/json.
package jsonscan

import "unicode/utf8"

// MaxDepth is how deeply SkipValue lets objects nest.
const MaxDepth = 32

// Kind is the kind of a value SkipValue read.
type Kind uint8

const (
	Invalid Kind = iota
	Null
	True
	False
	Number
	String
	Object
)

// Scanner reads Text from Pos on; each method moves Pos past what it read.
type Scanner struct {
	Text string
	Pos  int
}

// Space skips whitespace.
func (s *Scanner) Space() {
	if s.Pos < len(s.Text) && s.Text[s.Pos] > ' ' {
		return // the common case: no whitespace between tokens
	}
	for s.Pos < len(s.Text) {
		switch s.Text[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
		default:
			return
		}
	}
}

// Consume skips whitespace, then c if it is next, and reports whether it was.
func (s *Scanner) Consume(c byte) bool {
	s.Space()
	if s.Pos < len(s.Text) && s.Text[s.Pos] == c {
		s.Pos++
		return true
	}
	return false
}

// End skips whitespace and reports whether the text ends there.
func (s *Scanner) End() bool {
	s.Space()
	return s.Pos == len(s.Text)
}

// String reads a plain string (after whitespace) and returns its content, a substring of
// Text.
func (s *Scanner) String() (string, bool) {
	s.Space()
	t := s.Text
	if s.Pos >= len(t) || t[s.Pos] != '"' {
		return "", false
	}
	start := s.Pos + 1
	end := PlainEnd(t, start)
	if end == len(t) || t[end] != '"' {
		return "", false
	}
	s.Pos = end + 1
	return t[start:end], true
}

// PlainEnd returns where the plain content of a string starting at i ends: the index of the
// first byte from i that is a quote, a backslash, a control character or the start of
// invalid UTF-8, or len(t).
func PlainEnd(t string, i int) int {
	for i < len(t) {
		c := t[i]
		switch {
		case plainASCII[c]:
			i++
		case c < utf8.RuneSelf:
			return i // a quote, a backslash or a control character
		default:
			r, size := utf8.DecodeRuneInString(t[i:])
			if r == utf8.RuneError && size == 1 {
				return i
			}
			i += size
		}
	}
	return i
}

// plainASCII holds the ASCII bytes a plain string has as they are: from the space on, but
// the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Number reads a number literal (after whitespace) and returns it, a substring of Text.
func (s *Scanner) Number() (string, bool) {
	s.Space()
	end, ok := NumberEnd(s.Text, s.Pos)
	if !ok {
		return "", false
	}
	lit := s.Text[s.Pos:end]
	s.Pos = end
	return lit, true
}

// NumberEnd reads the number literal -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at i and
// returns where it ends, or where it stops being one and false.
func NumberEnd(t string, i int) (int, bool) {
	if i < len(t) && t[i] == '-' {
		i++
	}
	switch {
	case i < len(t) && t[i] == '0':
		i++
	case i < len(t) && '1' <= t[i] && t[i] <= '9':
		i = digits(t, i+1)
	default:
		return i, false
	}
	if i < len(t) && t[i] == '.' {
		j := digits(t, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		i++
		if i < len(t) && (t[i] == '+' || t[i] == '-') {
			i++
		}
		j := digits(t, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(t string, i int) int {
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	return i
}

// SkipValue reads one value (after whitespace) and returns its kind and text: a string's
// content without quotes, the literal of a number, true, false or null, an object's whole
// text.
func (s *Scanner) SkipValue() (Kind, string) {
	return s.skipValue(0)
}

func (s *Scanner) skipValue(depth int) (Kind, string) {
	s.Space()
	if s.Pos >= len(s.Text) {
		return Invalid, ""
	}
	switch c := s.Text[s.Pos]; {
	case c == '"':
		if str, ok := s.String(); ok {
			return String, str
		}
	case c == '-' || '0' <= c && c <= '9':
		if lit, ok := s.Number(); ok {
			return Number, lit
		}
	case c == '{':
		start := s.Pos
		if depth < MaxDepth && s.skipObject(depth+1) {
			return Object, s.Text[start:s.Pos]
		}
	default:
		for _, l := range [...]struct {
			word string
			kind Kind
		}{{"null", Null}, {"true", True}, {"false", False}} {
			if len(s.Text)-s.Pos >= len(l.word) && s.Text[s.Pos:s.Pos+len(l.word)] == l.word {
				s.Pos += len(l.word)
				return l.kind, l.word
			}
		}
	}
	return Invalid, ""
}

// skipObject reads the object at Pos (its opening brace).
func (s *Scanner) skipObject(depth int) bool {
	s.Pos++
	if s.Consume('}') {
		return true
	}
	for {
		if _, ok := s.String(); !ok || !s.Consume(':') {
			return false
		}
		if k, _ := s.skipValue(depth); k == Invalid {
			return false
		}
		if s.Consume(',') {
			continue
		}
		return s.Consume('}')
	}
}

// Members reads an object (after whitespace), calling member for each key with the scanner
// at the key's value, which member must read. It returns false when the text is not such an
// object or member returns false.
func (s *Scanner) Members(member func(key string) bool) bool {
	if !s.Consume('{') {
		return false
	}
	if s.Consume('}') {
		return true
	}
	for {
		key, ok := s.String()
		if !ok || !s.Consume(':') || !member(key) {
			return false
		}
		if s.Consume(',') {
			continue
		}
		return s.Consume('}')
	}
}
