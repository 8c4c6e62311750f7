package httpauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Role is a schema registry user's right; each includes the ones before.
type Role int

// The registry roles.
const (
	// Reader may GET: schemas, subjects, versions, config, mode, and look a
	// schema up under a subject.
	Reader Role = iota + 1
	// Writer may also register schemas and check compatibility.
	Writer
	// Admin may also delete, and set config and mode.
	Admin
)

func (r Role) String() string {
	switch r {
	case Reader:
		return "reader"
	case Writer:
		return "writer"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// RegistryRole is the role a schema registry request needs.
func RegistryRole(method, path string) Role {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return Reader
	case http.MethodPost:
		segs := strings.Split(strings.Trim(path, "/"), "/")
		switch {
		case len(segs) == 2 && segs[0] == "subjects":
			return Reader // POST /subjects/{subject}: is this schema registered?
		case segs[0] == "compatibility", len(segs) == 3 && segs[0] == "subjects" && segs[2] == "versions":
			return Writer
		}
	}
	return Admin // DELETE, PUT /config, PUT /mode, and anything unknown
}

// Basic is a set of HTTP Basic users with roles.
type Basic struct {
	users []basicUser
}

type basicUser struct {
	name string
	sum  [sha256.Size]byte // of the password
	role Role
}

// NewBasic returns an empty user set; Add users to it.
func NewBasic() *Basic { return &Basic{} }

// Add adds a user with role, from "user:password" as Confluent's
// basic.auth.user.info spells it.
func (b *Basic) Add(userInfo string, role Role) error {
	name, pass, ok := strings.Cut(userInfo, ":")
	if !ok || name == "" || len(pass) < 8 {
		return fmt.Errorf("%s credentials must be user:password with a password of 8 or more characters", role)
	}
	b.users = append(b.users, basicUser{name: name, sum: sha256.Sum256([]byte(pass)), role: role})
	return nil
}

// Authenticate returns the role of user with pass, or 0. Every user is
// compared, in constant time.
func (b *Basic) Authenticate(user, pass string) Role {
	sum := sha256.Sum256([]byte(pass))
	var role Role
	for _, u := range b.users {
		nameOK := subtle.ConstantTimeCompare([]byte(u.name), []byte(user))
		passOK := subtle.ConstantTimeCompare(u.sum[:], sum[:])
		if nameOK&passOK == 1 {
			role = u.role
		}
	}
	return role
}

// Require answers 401 to requests without known Basic credentials, 403 to
// those whose role is below need(r), and hands the rest to next.
func (b *Basic) Require(need func(*http.Request) Role, next http.Handler) http.Handler {
	return b.require(need, deny, next)
}

func (b *Basic) require(need func(*http.Request) Role, deny func(http.ResponseWriter, int, string, string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			deny(w, http.StatusUnauthorized, "Basic", "this API needs HTTP Basic credentials")
			return
		}
		user, pass, ok := ParseBasic(h)
		if !ok {
			deny(w, http.StatusUnauthorized, "Basic", "the Authorization header is not HTTP Basic credentials")
			return
		}
		role := b.Authenticate(user, pass)
		if role == 0 {
			deny(w, http.StatusUnauthorized, "Basic", "unknown user or wrong password")
			return
		}
		if want := need(r); role < want {
			deny(w, http.StatusForbidden, "Basic", fmt.Sprintf("%s %s needs the %s role; %s has %s", r.Method, r.URL.Path, want, user, role))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Registry wraps a schema registry handler: each request needs the role
// RegistryRole names. Denials are answered as Confluent's registry does:
// {"error_code": 40101 or 40301, "message": ...}.
func (b *Basic) Registry(next http.Handler) http.Handler {
	return b.require(func(r *http.Request) Role { return RegistryRole(r.Method, r.URL.Path) }, denyConfluent, next)
}

func denyConfluent(w http.ResponseWriter, status int, scheme, detail string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", scheme+` realm="pyrite"`)
	}
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error_code": status*100 + 1, "message": detail})
}
