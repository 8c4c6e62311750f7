package registry

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Media types of the Confluent REST API.
const (
	mediaV1      = "application/vnd.schemaregistry.v1+json"
	mediaDefault = "application/vnd.schemaregistry+json"
	mediaJSON    = "application/json"
	mediaOctet   = "application/octet-stream"
)

// rawText is a response body sent as it is (the /schema endpoints answer
// with the bare schema text, as Confluent does).
type rawText string

// endpoint answers one request with a body to encode, or an error; an
// *apiError is sent as Confluent's error body, any other error as 50001.
type endpoint func(r *http.Request) (any, error)

func (r *Registry) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, e endpoint) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
			body, err := e(req)
			if err != nil {
				r.writeError(w, req, err)
				return
			}
			writeJSON(w, req, http.StatusOK, body)
		})
	}
	handle("GET /{$}", func(*http.Request) (any, error) { return struct{}{}, nil })

	handle("GET /subjects", r.listSubjects)
	handle("POST /subjects/{subject}", r.lookupSchema)
	handle("DELETE /subjects/{subject}", r.deleteSubject)
	handle("GET /subjects/{subject}/versions", r.listVersions)
	handle("POST /subjects/{subject}/versions", r.registerSchema)
	handle("GET /subjects/{subject}/versions/{version}", r.getVersion)
	handle("DELETE /subjects/{subject}/versions/{version}", r.deleteVersion)
	handle("GET /subjects/{subject}/versions/{version}/schema", r.getVersionSchema)
	handle("GET /subjects/{subject}/versions/{version}/referencedby", r.getReferencedBy)
	handle("GET /subjects/{subject}/metadata", r.getLatestWithMetadata)

	handle("GET /schemas", r.listSchemas)
	handle("GET /schemas/types", func(*http.Request) (any, error) { return []string{schemaTypeAvro}, nil })
	handle("GET /schemas/ids/{id}", r.getSchemaByID)
	handle("GET /schemas/ids/{id}/schema", r.getSchemaTextByID)
	handle("GET /schemas/ids/{id}/subjects", r.getSubjectsByID)
	handle("GET /schemas/ids/{id}/versions", r.getVersionsByID)
	handle("GET /schemas/guids/{guid}", r.getSchemaByGUID)
	handle("GET /schemas/guids/{guid}/ids", r.getIDsByGUID)

	handle("POST /compatibility/subjects/{subject}/versions", r.checkCompatibilityAll)
	handle("POST /compatibility/subjects/{subject}/versions/{version}", r.checkCompatibilityVersion)

	handle("GET /config", r.getConfig)
	handle("PUT /config", r.putConfig)
	handle("DELETE /config", r.deleteConfig)
	handle("GET /config/{subject}", r.getConfig)
	handle("PUT /config/{subject}", r.putConfig)
	handle("DELETE /config/{subject}", r.deleteConfig)

	handle("GET /mode", r.getMode)
	handle("PUT /mode", r.putMode)
	handle("DELETE /mode", r.deleteMode)
	handle("GET /mode/{subject}", r.getMode)
	handle("PUT /mode/{subject}", r.putMode)
	handle("DELETE /mode/{subject}", r.deleteMode)

	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		_, pattern := mux.Handler(req)
		route := pattern
		if route == "" {
			route = "unmatched"
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				r.log.Error("panic serving request", "method", req.Method, "route", route, "panic", p)
				if sw.status == 0 {
					r.writeError(sw, req, newAPIError(codeInternal, "Internal error"))
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			r.metrics.requests.WithLabelValues(route, codeClass(status)).Inc()
			r.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		if pattern == "" {
			r.notRouted(sw, req, mux)
			return
		}
		if req.Method == http.MethodPost || req.Method == http.MethodPut {
			if !acceptedContentType(req.Header.Get("Content-Type")) {
				r.writeError(sw, req, newAPIError(codeUnsupportedMediaType, "HTTP 415 Unsupported Media Type"))
				return
			}
			if req.ContentLength > r.cfg.maxBody {
				r.writeError(sw, req, errTooLarge(r.cfg.maxBody))
				return
			}
		}
		req.Body = http.MaxBytesReader(sw, req.Body, r.cfg.maxBody)
		mux.ServeHTTP(sw, req)
	})
}

// notRouted answers what the mux does not route (404, 405, or a path
// clean-up redirect) with Confluent's error body where there is an error.
func (r *Registry) notRouted(w http.ResponseWriter, req *http.Request, mux *http.ServeMux) {
	c := &captureWriter{header: http.Header{}}
	h, _ := mux.Handler(req)
	h.ServeHTTP(c, req)
	for _, k := range []string{"Allow", "Location"} {
		if v := c.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	switch c.status {
	case http.StatusMethodNotAllowed:
		r.writeError(w, req, newAPIError(codeMethodNotAllowed, "HTTP 405 Method Not Allowed"))
	case 0, http.StatusNotFound, http.StatusOK:
		r.writeError(w, req, newAPIError(codeNotFound, "HTTP 404 Not Found"))
	default:
		w.WriteHeader(c.status)
	}
}

func errTooLarge(limit int64) *apiError {
	return newAPIError(codePayloadTooLarge, "Request body is larger than %d bytes", limit)
}

func acceptedContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case mediaV1, mediaDefault, mediaJSON, mediaOctet:
		return true
	}
	return false
}

// responseType picks the response media type from Accept: Confluent's v1
// type unless the client only accepts the unversioned or plain JSON type.
func responseType(req *http.Request) string {
	accept := req.Header.Get("Accept")
	if accept == "" {
		return mediaV1
	}
	var sawDefault, sawJSON bool
	for _, part := range strings.Split(accept, ",") {
		mt := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch mt {
		case mediaV1, "*/*", "application/*":
			return mediaV1
		case mediaDefault:
			sawDefault = true
		case mediaJSON:
			sawJSON = true
		}
	}
	switch {
	case sawDefault:
		return mediaDefault
	case sawJSON:
		return mediaJSON
	}
	return mediaV1
}

func writeJSON(w http.ResponseWriter, req *http.Request, status int, v any) {
	var body []byte
	if s, ok := v.(rawText); ok {
		body = []byte(s)
	} else {
		var err error
		if body, err = marshalJSON(v); err != nil {
			status = http.StatusInternalServerError
			body = []byte(`{"error_code":500,"message":"encoding the response failed"}`)
		}
	}
	w.Header().Set("Content-Type", responseType(req))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		r.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "err", err)
		ae = errStore(err)
	} else if ae.Code >= 50000 {
		r.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "err", ae.Message)
	}
	writeJSON(w, req, ae.status(), errorBody{ErrorCode: ae.Code, Message: ae.Message})
}

// decodeBody decodes a JSON object body into v (a pointer to a pointer, so
// that a null body is told apart). Malformed or empty JSON is 422 with
// error_code 422, as Confluent answers; a body over the limit is 413.
func decodeBody[T any](req *http.Request, limit int64) (*T, error) {
	dec := json.NewDecoder(req.Body)
	var v *T
	if err := dec.Decode(&v); err != nil {
		return nil, bodyError(err, limit)
	}
	if v == nil {
		return nil, newAPIError(codeUnprocessable, "Request body may not be null")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			return nil, newAPIError(codeUnprocessable, "Unexpected data after the JSON body")
		}
		return nil, bodyError(err, limit)
	}
	return v, nil
}

func bodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errTooLarge(limit)
	case errors.Is(err, io.EOF):
		return newAPIError(codeUnprocessable, "Request body is empty")
	default:
		return newAPIError(codeUnprocessable, "Unprocessable JSON body: %v", err)
	}
}

// boolParam reads a query flag the way JAX-RS does: "true" in any case is
// true, anything else false.
func boolParam(q url.Values, name string) bool {
	return strings.EqualFold(q.Get(name), "true")
}

// pageParams applies Confluent's offset and limit query parameters.
func page[T any](q url.Values, items []T) []T {
	if o, err := strconv.Atoi(q.Get("offset")); err == nil && o > 0 {
		if o >= len(items) {
			return items[:0]
		}
		items = items[o:]
	}
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l >= 0 && l < len(items) {
		items = items[:l]
	}
	return items
}

// parseVersion parses a version path segment: 1..2^31-1, or "latest" / -1
// (returned as -1). Anything else is 42202.
func parseVersion(s string) (int, error) {
	if strings.EqualFold(strings.TrimSpace(s), "latest") {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || (n < 1 && n != -1) {
		return 0, errInvalidVersion(s)
	}
	return int(n), nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
