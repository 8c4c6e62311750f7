package bus

import (
	"fmt"
	"strings"
)

// pattern is a parsed subscription pattern, matched as in the seed: "*" matches every type;
// otherwise the pattern and the type are split on ":" and must have the same number of
// segments, each pattern segment being "*" or equal to the type's. "*" inside a segment
// ("Work*") is literal.
type pattern struct {
	text  string
	parts []string // nil for "*"
}

func parsePattern(s string) (pattern, error) {
	if s == "" {
		return pattern{}, fmt.Errorf("%w: empty", ErrInvalidPattern)
	}
	if s == "*" {
		return pattern{text: s}, nil
	}
	parts := strings.Split(s, ":")
	for _, p := range parts {
		if p == "" {
			return pattern{}, fmt.Errorf("%w: %q has an empty segment", ErrInvalidPattern, s)
		}
	}
	return pattern{text: s, parts: parts}, nil
}

// Match reports whether eventType matches pattern under the seed's rules ("*", exact,
// segment wildcards such as "WorkEffort:*" and "*:Updated"). An invalid pattern matches
// nothing.
func Match(pat, eventType string) bool {
	p, err := parsePattern(pat)
	return err == nil && p.match(eventType)
}

// MatchAny returns a function reporting whether an event type matches any of patterns (as
// Match does), parsed once; an error wrapping ErrInvalidPattern names the first invalid one.
// It suits RunnerConfig.Wants.
func MatchAny(patterns ...string) (func(eventType string) bool, error) {
	ps := make([]pattern, len(patterns))
	for i, s := range patterns {
		p, err := parsePattern(s)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return func(t string) bool {
		for _, p := range ps {
			if p.match(t) {
				return true
			}
		}
		return false
	}, nil
}

// CheckPattern returns an error wrapping ErrInvalidPattern when pat is not a pattern Match
// accepts (empty, or with an empty segment).
func CheckPattern(pat string) error {
	_, err := parsePattern(pat)
	return err
}

func (p pattern) match(t string) bool {
	if p.parts == nil || p.text == t {
		return true
	}
	i := 0
	for seg := range strings.SplitSeq(t, ":") {
		if i >= len(p.parts) || (p.parts[i] != "*" && p.parts[i] != seg) {
			return false
		}
		i++
	}
	return i == len(p.parts)
}
