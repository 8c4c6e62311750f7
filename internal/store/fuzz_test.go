package store

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseURL: the --store flag is outside input. parseURL must not panic, must classify
// every input as PostgreSQL, SQLite or ErrUnsupportedURL, and never hand SQLite a path the
// driver would read as a URI or query.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"postgres://u@h:5432/db?sslmode=disable", "sqlite:///tmp/x.db", "sqlite:x.db",
		"x.db", ".pyrite/projector.db", "sqlite://:memory:", "file:x?mode=memory", "mysql://h/db", "", "SQLITE://a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, url string) {
		kind, target, err := parseURL(url)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedURL) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		switch kind {
		case Postgres:
			if target != url {
				t.Fatalf("postgres target %q != url %q", target, url)
			}
		case SQLite:
			if target == "" || strings.ContainsAny(target, "?#\x00") || strings.HasPrefix(target, "file:") || strings.HasPrefix(target, ":memory:") {
				t.Fatalf("unsafe SQLite path %q from %q", target, url)
			}
		default:
			t.Fatalf("kind %q", kind)
		}
	})
}
