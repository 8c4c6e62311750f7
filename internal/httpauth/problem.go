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
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":   map[int]string{http.StatusUnauthorized: "urn:pyrite:problem:unauthorized", http.StatusForbidden: "urn:pyrite:problem:forbidden"}[status],
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
}
