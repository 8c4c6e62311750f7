package codec_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

var _ codec.Registry = (*srclient.SchemaRegistryClient)(nil)

// The errors srclient's real client returns are classified: answers from an HTTP server that
// speaks the registry's API, and a server that is gone.
func TestSrclientErrors(t *testing.T) {
	text := schemaText(progressSubject, 1)
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	schemaBody, err := json.Marshal(map[string]string{"schema": text})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /schemas/ids/1", answer(200, string(schemaBody)))
	mux.Handle("GET /schemas/ids/1/versions", answer(200, `[{"subject":"`+progressSubject+`","version":1}]`))
	mux.Handle("GET /schemas/ids/2", answer(404, `{"error_code":40403,"message":"Schema 2 not found"}`))
	mux.Handle("GET /schemas/ids/3", answer(503, `<html>upstream down</html>`))
	mux.Handle("GET /schemas/ids/4", answer(500, `{"error_code":50001,"message":"Error in the backend data store"}`))
	mux.Handle("GET /schemas/ids/5", answer(401, `{"error_code":40101,"message":"Unauthorized"}`))
	mux.Handle("GET /schemas/ids/6", answer(200, `<html>a proxy's page</html>`))
	mux.Handle("GET /subjects/pyrite.system.Nope/versions/latest", answer(404, `{"error_code":40401,"message":"Subject not found"}`))
	mux.Handle("GET /subjects/"+progressSubject+"/versions/7", answer(404, `{"error_code":40402,"message":"Version 7 not found"}`))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	client := func(url string) *codec.Codec {
		c := srclient.NewSchemaRegistryClient(url)
		c.CachingEnabled(false)
		return codec.New(c)
	}
	live := client(srv.URL)
	ctx := t.Context()

	s, err := live.ByID(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Subject != progressSubject || s.Version != 1 {
		t.Errorf("ByID(1) = subject %q version %d, want %q 1", s.Subject, s.Version, progressSubject)
	}

	tests := []struct {
		name string
		call func() error
		want error // nil: no sentinel
	}{
		{"40403", func() error { _, err := live.ByID(ctx, 2); return err }, codec.ErrUnknownSchemaID},
		{"503 html", func() error { _, err := live.ByID(ctx, 3); return err }, codec.ErrRegistryUnavailable},
		{"50001", func() error { _, err := live.ByID(ctx, 4); return err }, codec.ErrRegistryUnavailable},
		{"40101", func() error { _, err := live.ByID(ctx, 5); return err }, nil},
		{"200 not json", func() error { _, err := live.ByID(ctx, 6); return err }, codec.ErrRegistryUnavailable},
		{"40401", func() error { _, err := live.Latest(ctx, "pyrite.system.Nope"); return err }, codec.ErrUnknownSubject},
		{"40402", func() error { _, err := live.Version(ctx, progressSubject, 7); return err }, codec.ErrUnknownSubject},
		{"connection refused", func() error { _, err := client(gone.URL).ByID(ctx, 1); return err }, codec.ErrRegistryUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range []error{codec.ErrUnknownSchemaID, codec.ErrUnknownSubject, codec.ErrRegistryUnavailable} {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.want))
				}
			}
		})
	}
}
