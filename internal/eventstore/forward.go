package eventstore

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// HeaderForwardedBy marks a request an instance forwarded to the owner of its partition, with
// the forwarder's address. A forwarded request is answered where it lands, never forwarded
// again, so two instances with different views of a moving partition cannot bounce it.
const HeaderForwardedBy = "Pyrite-Forwarded-By"

// Forwarded reports whether r was forwarded by another instance.
func Forwarded(r *http.Request) bool { return r.Header.Get(HeaderForwardedBy) != "" }

// forwardHeaders are the request headers passed on to the owner; answerHeaders those passed
// back.
var (
	forwardHeaders = []string{"Content-Type", "Accept", "Authorization", "traceparent", "tracestate"}
	answerHeaders  = []string{"Content-Type", "Retry-After", "Idempotent-Replayed", "Location"}
)

// Forward sends r (whose body was read into body) to owner and writes its answer to w. An
// error means the owner could not be reached or did not answer (the request may or may not
// have been handled there: an append is then safe to retry only with its ids); nothing has
// been written to w then.
func (s *Store) Forward(w http.ResponseWriter, r *http.Request, body []byte, owner string) error {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimRight(owner, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range forwardHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(HeaderForwardedBy, s.cfg.Advertise)
	resp, err := s.http.Do(req)
	if err != nil {
		s.m.forwards.WithLabelValues("unreachable").Inc()
		return fmt.Errorf("forward to %s: %w", owner, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		s.m.forwards.WithLabelValues("unreachable").Inc()
		return fmt.Errorf("forward to %s: reading the answer: %w", owner, err)
	}
	for _, h := range answerHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
	s.m.forwards.WithLabelValues("answered").Inc()
	return nil
}
