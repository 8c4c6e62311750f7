package httpauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// Token is one entry of an --auth-file.
type Token struct {
	// Token is the secret a client sends as "Authorization: Bearer <token>".
	Token string `json:"token"`
	// Principal names who uses the token: it is recorded on every event the
	// token writes (ce_userid, unless SetUserID, and the pyrite-principal
	// header).
	Principal string `json:"principal"`
	// Types are the event types the token may write, as bus patterns
	// ("*", "Deployment:*", "*:Completed"). Empty: none.
	Types []string `json:"types"`
	// SetUserID lets the body's metadata.userId stand (acting for a user);
	// otherwise ce_userid is the principal.
	SetUserID bool `json:"setUserId,omitempty"`
}

// Grant is what an authenticated request may do.
type Grant struct {
	Principal string
	Types     []string
	SetUserID bool
}

// Allows reports whether the grant may write eventType.
func (g *Grant) Allows(eventType string) bool {
	for _, p := range g.Types {
		if bus.Match(p, eventType) {
			return true
		}
	}
	return false
}

// UserID is the ce_userid of an event whose body says userID.
func (g *Grant) UserID(userID string) string {
	if g.SetUserID && userID != "" {
		return userID
	}
	return g.Principal
}

type grantKey struct{}

// GrantFrom returns the grant Tokens.Require put in ctx, or nil when the
// request was not authenticated (authentication off).
func GrantFrom(ctx context.Context) *Grant {
	g, _ := ctx.Value(grantKey{}).(*Grant)
	return g
}

// Tokens is a set of bearer tokens. Its zero value knows no token.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	sum   [sha256.Size]byte
	grant *Grant
}

// NewTokens checks ts (every problem at once) and returns the set.
func NewTokens(ts []Token) (*Tokens, error) {
	var errs []error
	out := &Tokens{}
	seen := map[[sha256.Size]byte]bool{}
	for i, t := range ts {
		sum := sha256.Sum256([]byte(t.Token))
		switch {
		case len(t.Token) < 16:
			errs = append(errs, fmt.Errorf("tokens[%d] (%s): token shorter than 16 characters", i, t.Principal))
		case !isToken68(t.Token):
			errs = append(errs, fmt.Errorf("tokens[%d] (%s): token has characters a bearer token cannot carry", i, t.Principal))
		case seen[sum]:
			errs = append(errs, fmt.Errorf("tokens[%d] (%s): the same token is listed twice", i, t.Principal))
		}
		if t.Principal == "" {
			errs = append(errs, fmt.Errorf("tokens[%d]: principal is required", i))
		}
		for _, p := range t.Types {
			if p == "" || strings.Contains(p, "::") || strings.HasPrefix(p, ":") || strings.HasSuffix(p, ":") {
				errs = append(errs, fmt.Errorf("tokens[%d] (%s): %q is not an event type pattern", i, t.Principal, p))
			}
		}
		seen[sum] = true
		out.entries = append(out.entries, tokenEntry{sum: sum, grant: &Grant{Principal: t.Principal, Types: t.Types, SetUserID: t.SetUserID}})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadTokens reads an --auth-file: {"tokens": [Token, ...]}. Errors name
// the file and the entry, never a token.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Tokens []Token `json:"tokens"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: not a token file ({\"tokens\": [{\"token\", \"principal\", \"types\"}]}): %w", path, jsonProblem(err))
	}
	t, err := NewTokens(f.Tokens)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// jsonProblem keeps a decoding error's position and kind but not the text
// it quotes, which may be a secret.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %s has the wrong type", te.Field)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return errors.New(err.Error()) // names the field only
	}
	return errors.New("malformed JSON")
}

// Lookup returns the grant of token, or nil. Every entry is compared, in
// constant time, whatever matches.
func (t *Tokens) Lookup(token string) *Grant {
	sum := sha256.Sum256([]byte(token))
	var found *Grant
	for i := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].sum[:]) == 1 {
			found = t.entries[i].grant
		}
	}
	return found
}

// Require answers 401 to requests under prefix without a known bearer
// token, and hands the others to next with their Grant in the context.
// Requests outside prefix pass unauthenticated ("" protects everything).
func (t *Tokens) Require(prefix string, next http.Handler) http.Handler {
	return t.require(prefix, false, next)
}

// RequireRead is Require for a read API (the projector's query API and live
// stream): a GET or HEAD request may carry its token in the
// pyrite_read_token cookie (CookieName, set by Session) instead of the
// Authorization header, since a browser's EventSource cannot send a header.
// Any other method needs the header: a cookie never authorizes a write, so
// another site cannot make a signed-in browser write (CSRF). A request with
// an Authorization header is judged by the header alone.
func (t *Tokens) RequireRead(prefix string, next http.Handler) http.Handler {
	return t.require(prefix, true, next)
}

func (t *Tokens) require(prefix string, cookie bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix) {
			next.ServeHTTP(w, r)
			return
		}
		g, detail := t.authenticate(r, cookie)
		if g == nil {
			deny(w, http.StatusUnauthorized, "Bearer", detail)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
	})
}

// authenticate returns the grant of r's bearer token or, when cookie is set
// and r is a GET or HEAD without an Authorization header, of its
// pyrite_read_token cookie; or nil and why not (no secret in it).
func (t *Tokens) authenticate(r *http.Request, cookie bool) (*Grant, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if cookie && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if c, err := r.Cookie(CookieName); err == nil {
				if g := t.Lookup(c.Value); g != nil {
					return g, ""
				}
				return nil, "unknown token in the " + CookieName + " cookie (sign in again)"
			}
		}
		if _, err := r.Cookie(CookieName); err == nil && cookie {
			return nil, r.Method + " needs a bearer token (Authorization: Bearer <token>); the " + CookieName + " cookie is only accepted on GET and HEAD"
		}
		return nil, "this API needs a bearer token (Authorization: Bearer <token>)"
	}
	tok, ok := ParseBearer(h)
	if !ok {
		return nil, "the Authorization header is not a bearer token"
	}
	g := t.Lookup(tok)
	if g == nil {
		return nil, "unknown bearer token"
	}
	return g, ""
}
