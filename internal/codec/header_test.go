package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

var guidV1 = codec.GUID{0xfd, 0xa9, 0xdb, 0x52, 0xf0, 0x35, 0x36, 0xec, 0xdd, 0xcd, 0x28, 0x9b, 0x44, 0x8b, 0x23, 0xbc}

func TestGUIDString(t *testing.T) {
	if got, want := guidV1.String(), "fda9db52-f035-36ec-ddcd-289b448b23bc"; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestParseSchemaIDHeader(t *testing.T) {
	guidHeader := codec.AppendGUIDHeader(nil, guidV1)
	tests := []struct {
		name   string
		header []byte
		want   codec.SchemaRef
		bad    bool
	}{
		{"guid", guidHeader, codec.SchemaRef{GUID: guidV1, IsGUID: true}, false},
		{"id", []byte{0, 0, 0, 1, 2}, codec.SchemaRef{ID: 258}, false},
		{"empty", nil, codec.SchemaRef{}, true},
		{"other magic", append([]byte{2}, guidV1[:]...), codec.SchemaRef{}, true},
		{"short guid", guidHeader[:16], codec.SchemaRef{}, true},
		{"long guid", append(guidHeader, 0), codec.SchemaRef{}, true},
		{"short id", []byte{0, 0, 1}, codec.SchemaRef{}, true},
		{"text", []byte("fda9db52-f035-36ec-ddcd-289b448b23bc"), codec.SchemaRef{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.ParseSchemaIDHeader(tt.header)
			if tt.bad {
				if !errors.Is(err, codec.ErrBadSchemaIDHeader) {
					t.Fatalf("err = %v, want ErrBadSchemaIDHeader", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestPrefixed: a record without the header is left as it is; with one, the header wins and
// the bare body comes back behind the id the header names, looked up by GUID once.
func TestPrefixed(t *testing.T) {
	text := schemaText(progressSubject, 1)
	schemaBody, _ := json.Marshal(map[string]string{"schema": text})
	var guidCalls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /schemas/ids/7", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(schemaBody) })
	mux.HandleFunc("GET /schemas/guids/"+guidV1.String()+"/ids", func(w http.ResponseWriter, _ *http.Request) {
		guidCalls.Add(1)
		_, _ = w.Write([]byte(`[{"context":".","id":7}]`))
	})
	mux.HandleFunc("GET /schemas/guids/{guid}/ids", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"error_code":40403,"message":"Schema not found"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := codec.Dial(srv.URL)
	ctx := t.Context()
	body := []byte{0x00, 0x14, 0x78} // a bare body that happens to start with 0x00

	got, err := c.Prefixed(ctx, body, nil, false)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("no header: %x, %v; want the value as it is", got, err)
	}
	for range 2 {
		got, err = c.Prefixed(ctx, body, codec.AppendGUIDHeader(nil, guidV1), true)
		if want := append(codec.AppendHeader(nil, 7), body...); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("guid header: %x, %v; want %x", got, err, want)
		}
	}
	if n := guidCalls.Load(); n != 1 {
		t.Errorf("%d GUID lookups, want 1 (cached)", n)
	}
	s, err := c.ByGUID(ctx, guidV1)
	if err != nil || s.ID != 7 || s.Text != text {
		t.Errorf("ByGUID = %+v, %v", s, err)
	}
	got, err = c.Prefixed(ctx, body, []byte{0, 0, 0, 0, 9}, true)
	if want := append(codec.AppendHeader(nil, 9), body...); err != nil || !bytes.Equal(got, want) {
		t.Errorf("id header: %x, %v; want %x", got, err, want)
	}
	if _, err := c.Prefixed(ctx, body, codec.AppendGUIDHeader(nil, codec.GUID{1}), true); !errors.Is(err, codec.ErrUnknownSchemaID) {
		t.Errorf("unknown guid: %v, want ErrUnknownSchemaID", err)
	}
	if _, err := c.Prefixed(ctx, body, []byte{1, 2, 3}, true); !errors.Is(err, codec.ErrBadSchemaIDHeader) {
		t.Errorf("malformed header: %v, want ErrBadSchemaIDHeader", err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if _, err := codec.Dial(gone.URL).Prefixed(ctx, body, codec.AppendGUIDHeader(nil, guidV1), true); !errors.Is(err, codec.ErrRegistryUnavailable) {
		t.Errorf("registry gone: %v, want ErrRegistryUnavailable", err)
	}
}

// FuzzParseSchemaIDHeader: any bytes parse or wrap ErrBadSchemaIDHeader, never panic; a GUID
// parsed writes back to the same bytes.
func FuzzParseSchemaIDHeader(f *testing.F) {
	f.Add(codec.AppendGUIDHeader(nil, guidV1))
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ref, err := codec.ParseSchemaIDHeader(b)
		switch {
		case err != nil:
			if !errors.Is(err, codec.ErrBadSchemaIDHeader) {
				t.Fatalf("error %v does not wrap ErrBadSchemaIDHeader", err)
			}
		case ref.IsGUID:
			if !bytes.Equal(codec.AppendGUIDHeader(nil, ref.GUID), b) {
				t.Fatalf("GUID %s does not write back to %x", ref.GUID, b)
			}
		default:
			if !bytes.Equal(codec.AppendHeader(nil, ref.ID), b) {
				t.Fatalf("id %d does not write back to %x", ref.ID, b)
			}
		}
	})
}
