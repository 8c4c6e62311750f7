package httpauth

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	allToken        = "all-0123456789abcdef"
	deploymentToken = "dep-0123456789abcdef"
)

func testTokens(t *testing.T) *Tokens {
	t.Helper()
	ts, err := NewTokens([]Token{
		{Token: allToken, Principal: "ops", Types: []string{"*"}, SetUserID: true},
		{Token: deploymentToken, Principal: "deploy-bot", Types: []string{"Deployment:*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTokensRequire(t *testing.T) {
	ts := testTokens(t)
	var got *Grant
	h := ts.Require("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = GrantFrom(r.Context()) }))
	tests := []struct {
		name, path, auth string
		code             int
		principal        string
	}{
		{"missing token", "/v1/events", "", 401, ""},
		{"unknown token", "/v1/events", "Bearer nope-0123456789abcdef", 401, ""},
		{"basic instead of bearer", "/v1/events", "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), 401, ""},
		{"known token", "/v1/events", "Bearer " + deploymentToken, 200, "deploy-bot"},
		{"scheme case-insensitive", "/v1/events", "bearer " + allToken, 200, "ops"},
		{"outside the prefix", "/", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest("POST", tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.code == 401 {
				if !strings.Contains(rec.Body.String(), "urn:pyrite:problem:unauthorized") || rec.Header().Get("Content-Type") != "application/problem+json" {
					t.Errorf("401 is not a problem document: %s", rec.Body)
				}
				if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: %q", rec.Header())
				}
				if strings.Contains(rec.Body.String(), "0123456789abcdef") {
					t.Errorf("answer shows the token: %s", rec.Body)
				}
			}
			if tt.principal != "" && (got == nil || got.Principal != tt.principal) {
				t.Errorf("grant %+v, want principal %s", got, tt.principal)
			}
		})
	}
}

func TestGrantScope(t *testing.T) {
	ts := testTokens(t)
	dep := ts.Lookup(deploymentToken)
	if !dep.Allows("Deployment:RunTests") || dep.Allows("WorkEffort:Created") {
		t.Error("Deployment:* grant: wrong scope")
	}
	if got := dep.UserID("someone-else"); got != "deploy-bot" {
		t.Errorf("a token without setUserId keeps ce_userid %q, want its principal", got)
	}
	all := ts.Lookup(allToken)
	if got := all.UserID("alice"); got != "alice" {
		t.Errorf("setUserId token: ce_userid %q, want the body's", got)
	}
	if got := all.UserID(""); got != "ops" {
		t.Errorf("setUserId token without a body userId: %q, want the principal", got)
	}
}

func TestLoadTokensErrorsHideSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.json", `{"tokens":[{"token":"`+allToken+`","principal":"ops","types":["*"]}]}`)
	if ts, err := LoadTokens(ok); err != nil || ts.Lookup(allToken) == nil {
		t.Fatalf("LoadTokens: %v", err)
	}
	for name, body := range map[string]string{
		"short.json":  `{"tokens":[{"token":"secret-xyz","principal":"a","types":["*"]}]}`,
		"syntax.json": `{"tokens":[{"token":"secret-xyz-0123456789" "principal"}]}`,
		"type.json":   `{"tokens":[{"token":"secret-xyz-0123456789","principal":"a","types":"secret-xyz"}]}`,
		"dup.json":    `{"tokens":[{"token":"secret-xyz-0123456789","principal":"a"},{"token":"secret-xyz-0123456789","principal":"b"}]}`,
	} {
		_, err := LoadTokens(write(name, body))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "secret-xyz") {
			t.Errorf("%s: error %q shows the token", name, err)
		}
	}
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestRegistryRoles(t *testing.T) {
	b := NewBasic()
	for info, role := range map[string]Role{"r:reader-pass": Reader, "w:writer-pass": Writer, "a:admin-pass": Admin} {
		if err := b.Add(info, role); err != nil {
			t.Fatal(err)
		}
	}
	h := b.Registry(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	tests := []struct {
		method, path, user, pass string
		code                     int
	}{
		{"GET", "/subjects", "", "", 401},
		{"GET", "/subjects", "r", "wrong-password", 401},
		{"GET", "/subjects", "r", "reader-pass", 299},
		{"POST", "/subjects/x", "r", "reader-pass", 299},
		{"POST", "/subjects/x/versions", "r", "reader-pass", 403},
		{"POST", "/subjects/x/versions", "w", "writer-pass", 299},
		{"POST", "/compatibility/subjects/x/versions/latest", "w", "writer-pass", 299},
		{"DELETE", "/subjects/x", "w", "writer-pass", 403},
		{"DELETE", "/subjects/x/versions/1", "r", "reader-pass", 403},
		{"PUT", "/config", "w", "writer-pass", 403},
		{"PUT", "/mode/x", "w", "writer-pass", 403},
		{"DELETE", "/subjects/x", "a", "admin-pass", 299},
		{"PUT", "/config/x", "a", "admin-pass", 299},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.user != "" {
			req.Header.Set("Authorization", basicHeader(tt.user, tt.pass))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.code {
			t.Errorf("%s %s as %q: %d, want %d (%s)", tt.method, tt.path, tt.user, rec.Code, tt.code, rec.Body)
		}
		if rec.Code >= 400 && !strings.Contains(rec.Body.String(), `"error_code":`+map[int]string{401: "40101", 403: "40301"}[rec.Code]) {
			t.Errorf("%s %s: body %s is not a Confluent error", tt.method, tt.path, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "-pass") {
			t.Errorf("answer shows a password: %s", rec.Body)
		}
	}
	if err := b.Add("nopass", Reader); err == nil {
		t.Error("Add accepted credentials without a password")
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b-c_d~e+f/g==", "Bearer ", "Bearer  x", "Basic abc", "Bearer a b", "Bearer ==", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := ParseBearer(h)
		if !ok {
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,\"") {
			t.Fatalf("ParseBearer(%q) = %q: not a token68", h, tok)
		}
		if again, ok := ParseBearer("Bearer " + tok); !ok || again != tok {
			t.Fatalf("round trip of %q: %q %v", tok, again, ok)
		}
	})
}

func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{basicHeader("u", "p"), basicHeader("u", "p:q"), "Basic !!!", "basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), "Bearer x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		user, pass, ok := ParseBasic(h)
		// Agree with net/http's parser on every input.
		req := &http.Request{Header: http.Header{"Authorization": {h}}}
		wu, wp, wok := req.BasicAuth()
		if ok != wok || user != wu || pass != wp {
			t.Fatalf("ParseBasic(%q) = %q %q %v; net/http says %q %q %v", h, user, pass, ok, wu, wp, wok)
		}
		if ok && strings.Contains(user, ":") {
			t.Fatalf("user %q has a colon", user)
		}
	})
}
