package httpauth

import (
	"encoding/json"
	"net/http"
)

// deny answers an RFC 9457 problem (type urn:pyrite:problem:unauthorized or
// forbidden, as ingest's own problems). A 401 carries the challenge of scheme.
func deny(w http.ResponseWriter, status int, scheme, detail string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", scheme+` realm="pyrite"`)
	}
	problem(w, status, map[int]string{http.StatusUnauthorized: "unauthorized", http.StatusForbidden: "forbidden"}[status], detail)
}

// problem answers an RFC 9457 problem of type urn:pyrite:problem:<slug>.
func problem(w http.ResponseWriter, status int, slug, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":   "urn:pyrite:problem:" + slug,
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
}
