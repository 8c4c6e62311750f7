package httpauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequireReadCookie(t *testing.T) {
	ts := testTokens(t)
	var got *Grant
	h := ts.RequireRead("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = GrantFrom(r.Context()) }))
	plain := ts.Require("/v1/", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	good := &http.Cookie{Name: CookieName, Value: deploymentToken}
	bad := &http.Cookie{Name: CookieName, Value: "nope-0123456789abcdef"}
	tests := []struct {
		name, method, auth string
		cookie             *http.Cookie
		code               int
		principal          string
	}{
		{"GET with the cookie", "GET", "", good, 200, "deploy-bot"},
		{"HEAD with the cookie", "HEAD", "", good, 200, "deploy-bot"},
		{"GET with an unknown cookie", "GET", "", bad, 401, ""},
		{"GET with neither", "GET", "", nil, 401, ""},
		{"POST with the cookie (CSRF)", "POST", "", good, 401, ""},
		{"DELETE with the cookie", "DELETE", "", good, 401, ""},
		{"PUT with the cookie", "PUT", "", good, 401, ""},
		{"POST with a bearer token", "POST", "Bearer " + allToken, nil, 200, "ops"},
		{"bearer header wins over the cookie", "GET", "Bearer " + allToken, good, 200, "ops"},
		{"bad bearer header, good cookie", "GET", "Bearer nope-0123456789abcdef", good, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(tt.method, "/v1/stream", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.cookie != nil {
				req.AddCookie(tt.cookie)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.principal != "" && (got == nil || got.Principal != tt.principal) {
				t.Errorf("grant %+v, want principal %s", got, tt.principal)
			}
			if strings.Contains(rec.Body.String(), "0123456789abcdef") {
				t.Errorf("answer shows a token: %s", rec.Body)
			}
			if tt.code == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge")
			}
			// Require (ingest's) never takes the cookie.
			if tt.cookie != nil && tt.auth == "" {
				rec := httptest.NewRecorder()
				plain.ServeHTTP(rec, req)
				if rec.Code != 401 {
					t.Errorf("Require accepted the cookie: %d", rec.Code)
				}
			}
		})
	}
}

func TestSessionRoutes(t *testing.T) {
	ts := testTokens(t)
	mux := http.NewServeMux()
	mux.Handle("/v1/session", ts.Session())
	mux.Handle("/v1/", ts.RequireRead("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(GrantFrom(r.Context()).Principal))
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	do := func(method, path, ctype, body string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	refused := []struct {
		name, ctype, body string
		code              int
	}{
		{"unknown token", "application/json", `{"token":"nope-0123456789abcdef"}`, 401},
		{"not JSON", "application/x-www-form-urlencoded", "token=" + allToken, 415},
		{"no content type", "", `{"token":"` + allToken + `"}`, 415},
		{"malformed", "application/json", `{"token":`, 400},
		{"no token", "application/json", `{}`, 400},
		{"unknown field", "application/json", `{"token":"` + allToken + `","x":1}`, 400},
		{"bad characters", "application/json", `{"token":"a b"}`, 400},
		{"too large", "application/json", `{"token":"` + strings.Repeat("a", 5000) + `"}`, 413},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp := do("POST", "/v1/session", tt.ctype, tt.body)
			if resp.StatusCode != tt.code {
				t.Errorf("POST /v1/session: %d, want %d", resp.StatusCode, tt.code)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("a refused sign-in set a cookie: %v", resp.Cookies())
			}
		})
	}

	if resp := do("GET", "/v1/session", "", ""); resp.StatusCode != 401 {
		t.Errorf("GET /v1/session signed out: %d, want 401", resp.StatusCode)
	}
	resp := do("POST", "/v1/session", "application/json; charset=utf-8", `{"token":"`+deploymentToken+`"}`)
	var who struct{ Principal string }
	if err := json.NewDecoder(resp.Body).Decode(&who); err != nil || resp.StatusCode != 200 || who.Principal != "deploy-bot" {
		t.Fatalf("sign in: %d %+v %v", resp.StatusCode, who, err)
	}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("sign in set %d cookies", len(cs))
	}
	c := cs[0]
	if c.Name != CookieName || c.Value != deploymentToken || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/v1/" || c.Secure {
		t.Errorf("cookie %+v: want %s, HttpOnly, SameSite=Strict, Path=/v1/, not Secure over plain HTTP", c, CookieName)
	}
	if resp := do("GET", "/v1/session", "", "", c); resp.StatusCode != 200 {
		t.Errorf("GET /v1/session signed in: %d", resp.StatusCode)
	}
	if resp := do("GET", "/v1/stream", "", "", c); resp.StatusCode != 200 {
		t.Errorf("GET /v1/stream with the cookie: %d", resp.StatusCode)
	}
	if resp := do("POST", "/v1/commands", "application/json", "{}", c); resp.StatusCode != 401 {
		t.Errorf("POST with the cookie: %d, want 401", resp.StatusCode)
	}
	resp = do("DELETE", "/v1/session", "", "", c)
	if resp.StatusCode != 204 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 || resp.Cookies()[0].Value != "" {
		t.Errorf("sign out: %d, cookies %v; want 204 and the cookie cleared", resp.StatusCode, resp.Cookies())
	}
	if resp := do("PUT", "/v1/session", "", ""); resp.StatusCode != 405 {
		t.Errorf("PUT /v1/session: %d, want 405", resp.StatusCode)
	}
}

func TestSessionCookieSecureOverTLS(t *testing.T) {
	ts := testTokens(t)
	srv := httptest.NewTLSServer(ts.Session())
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/v1/session", "application/json", strings.NewReader(`{"token":"`+allToken+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != 200 || len(cs) != 1 || !cs[0].Secure {
		t.Errorf("sign in over TLS: %d, cookies %v; want one Secure cookie", resp.StatusCode, cs)
	}
}

func FuzzParseSessionRequest(f *testing.F) {
	for _, s := range []string{`{"token":"abc"}`, `{"token":""}`, `{"token":"a b"}`, `{"token":1}`, `{}`, `{"token":"a"} x`,
		`{"token":"a","token":"b"}`, `{"token":"\u0041=="}`, `[]`, `null`, ""} {
		f.Add("application/json", []byte(s))
	}
	f.Add("text/plain", []byte(`{"token":"abc"}`))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		tok, err := ParseSessionRequest(ctype, body)
		if err != nil {
			if tok != "" {
				t.Fatalf("error %v with token %q", err, tok)
			}
			if !errors.Is(err, ErrSessionNotJSON) && !errors.Is(err, ErrSessionMalformed) && !errors.Is(err, ErrSessionBadToken) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if tok == "" || !isToken68(tok) {
			t.Fatalf("accepted token %q", tok)
		}
		// What was accepted is what a client encoding it sends.
		again, err := ParseSessionRequest("application/json", mustJSON(t, map[string]string{"token": tok}))
		if err != nil || again != tok {
			t.Fatalf("round trip of %q: %q %v", tok, again, err)
		}
		if _, ok := ParseBearer("Bearer " + tok); !ok {
			t.Fatalf("token %q is not a bearer token", tok)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
