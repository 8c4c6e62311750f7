package stacktest

import (
	"errors"
	"net"
	"testing"
)

// DeadAddr returns a host:port where nothing works: connections are
// accepted and closed at once. The port stays held until the test ends, so
// no other test can bind it meanwhile (as can happen to a port merely
// closed again, when packages' tests run in parallel).
func DeadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				c.Close()
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}
