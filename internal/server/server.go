// Package server runs a Pyrite program's HTTP server: the program's own API
// plus GET /healthz, GET /readyz and GET /metrics, with the timeouts every
// server needs and a graceful drain on shutdown.
//
// /healthz answers 200 while the process runs. /readyz answers 200 only while
// the readiness check passes (and 503 with the reason otherwise). /metrics
// serves the explicit Prometheus registry it is given.
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts applied to every server.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
)

// NewRegistry returns the explicit metrics registry a program builds in main,
// with the Go runtime and process collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ReadyFunc reports nil when the program can do its job, or why not.
type ReadyFunc func(ctx context.Context) error

// Handler wraps api with the standard routes. api may be nil.
func Handler(api http.Handler, ready ReadyFunc, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := ready(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	if api != nil {
		mux.Handle("/", api)
	}
	return mux
}

// Listen opens addr. A port already in use is reported naming the address and
// flag so the operator knows what to change.
func Listen(addr, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("address %s is already in use; choose another with --%s", addr, flagName)
		}
		return nil, fmt.Errorf("listen on %s (--%s): %w", addr, flagName, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is done, then stops accepting, lets in-flight
// requests finish within drain, closes every connection, and returns. It
// returns nil after a clean shutdown and an error if requests were still in
// flight when drain ran out.
//
// Unlike http.Server.Shutdown alone, connections that were opened but never
// sent a request do not hold the shutdown up (Shutdown waits up to 5s for
// those): only requests in flight count.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, drain time.Duration) error {
	var (
		mu     sync.Mutex
		active = map[net.Conn]bool{}
		idle   = make(chan struct{}, 1)
	)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ConnState: func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			if st == http.StateActive {
				active[c] = true
				return
			}
			delete(active, c)
			if len(active) == 0 {
				select {
				case idle <- struct{}{}:
				default:
				}
			}
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.SetKeepAlivesEnabled(false)
	_ = ln.Close() // stop accepting; Serve returns ErrServerClosed after Close below
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
	var err error
	for {
		mu.Lock()
		n := len(active)
		mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-idle:
			continue
		case <-deadline.C:
			err = fmt.Errorf("server: %d requests still in flight after the %s drain", n, drain)
		}
		break
	}
	_ = srv.Close()
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		return errors.Join(err, serr)
	}
	return err
}

// Main is a service program's main: it calls run with the program's arguments and a context
// that SIGINT or SIGTERM cancel, then exits 0 on success or -help, and 1 after printing
// "name: error" otherwise.
func Main(name string, run func(ctx context.Context, args []string, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}
