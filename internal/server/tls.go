package server

import (
	"crypto/tls"
	"fmt"
	"net"
)

// WithTLS returns ln serving TLS with the PEM certificate and key files
// (--tls-cert, --tls-key), or ln itself when both are empty.
func WithTLS(ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	if certFile == "" && keyFile == "" {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}
