package httpauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
)

// CookieName is the cookie a sign-in (Session) sets: the read token itself,
// HttpOnly (no script reads it), SameSite=Strict (no other site's request
// carries it), Path=/v1/, Secure when the sign-in came over TLS. RequireRead
// accepts it on GET and HEAD.
const CookieName = "pyrite_read_token"

// maxSessionBody bounds a sign-in request's body.
const maxSessionBody = 4 << 10

// Errors of ParseSessionRequest; none quotes the body.
var (
	ErrSessionNotJSON   = errors.New(`the body must be JSON (Content-Type: application/json): {"token": "<token>"}`)
	ErrSessionMalformed = errors.New(`the body must be {"token": "<token>"}`)
	ErrSessionBadToken  = errors.New("the token has characters a bearer token cannot carry")
)

// ParseSessionRequest returns the token of a sign-in request: Content-Type
// application/json and the body {"token": "<token>"}, the token non-empty
// token68 characters (as a bearer token). Unknown fields are refused. Only
// JSON is accepted, so a cross-site HTML form cannot sign a browser in.
func ParseSessionRequest(contentType string, body []byte) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return "", ErrSessionNotJSON
	}
	var req struct {
		Token *string `json:"token"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Token == nil {
		return "", ErrSessionMalformed
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", ErrSessionMalformed // something after the object
	}
	if *req.Token == "" || !isToken68(*req.Token) {
		return "", ErrSessionBadToken
	}
	return *req.Token, nil
}

// Session serves a browser's sign-in for a read API guarded by RequireRead
// (the projector's board), at whatever path it is mounted on (/v1/session):
//
//   - POST with {"token": "<token>"}: a known token answers 200
//     {"principal"} and sets the CookieName cookie; an unknown one 401; a
//     malformed body 400, a body that is not JSON 415, one over 4 KiB 413.
//   - GET (or HEAD): 200 {"principal"} for the request's bearer token or
//     cookie, 401 otherwise.
//   - DELETE: clears the cookie (204). It needs no credentials.
//
// Answers never carry the token; errors are RFC 9457 problems.
func (t *Tokens) Session() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g, detail := t.authenticate(r, true)
			if g == nil {
				deny(w, http.StatusUnauthorized, "Bearer", detail)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"principal": g.Principal})
		case http.MethodPost:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSessionBody))
			if err != nil {
				problem(w, http.StatusRequestEntityTooLarge, "bad-request", "the body is larger than 4 KiB")
				return
			}
			tok, err := ParseSessionRequest(r.Header.Get("Content-Type"), body)
			switch {
			case errors.Is(err, ErrSessionNotJSON):
				problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", err.Error())
				return
			case err != nil:
				problem(w, http.StatusBadRequest, "bad-request", err.Error())
				return
			}
			g := t.Lookup(tok)
			if g == nil {
				deny(w, http.StatusUnauthorized, "Bearer", "unknown token")
				return
			}
			http.SetCookie(w, sessionCookie(r, tok, 0))
			writeJSON(w, http.StatusOK, map[string]string{"principal": g.Principal})
		case http.MethodDelete:
			http.SetCookie(w, sessionCookie(r, "", -1))
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
			problem(w, http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed on "+r.URL.Path)
		}
	})
}

// sessionCookie is the sign-in cookie holding value; maxAge -1 deletes it,
// 0 makes it last as long as the browser session.
func sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: "/v1/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
