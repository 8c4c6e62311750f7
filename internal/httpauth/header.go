package httpauth

import (
	"encoding/base64"
	"strings"
)

// ParseBearer returns the token of an "Authorization: Bearer <token>"
// header value. The scheme is case-insensitive; the token must be non-empty
// token68 characters (RFC 6750).
func ParseBearer(h string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(rest, " ")
	if token == "" || !isToken68(token) {
		return "", false
	}
	return token, true
}

// ParseBasic returns the user and password of an "Authorization: Basic
// <base64(user:password)>" header value (RFC 7617). The user may not
// contain a colon; the password may.
func ParseBasic(h string) (user, pass string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return user, pass, true
}

func isToken68(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
