package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pyrite-dev/pyrite/internal/certs"
	"github.com/pyrite-dev/pyrite/internal/config"
)

const certsUsage = `
Makes a private CA and a server certificate it signs for --hosts, once, in
--dir (ca.pem, ca-key.pem, server.pem, server-key.pem) and writes
server-keystore.pem (the key, PKCS#8, then the certificate) for a Kafka
broker's PEM key store (ssl.keystore.type=PEM). Running it again keeps what
is there; a server certificate that does not cover every host is made again.
For a local stack (compose/); use a real PKI in production.`

func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pyrite certs", certsUsage, stderr)
	dir := fs.String("dir", "pki", "directory to keep the CA and the server certificate in")
	hosts := fs.String("hosts", "localhost,127.0.0.1", "comma-separated DNS names and IP addresses the server certificate is for")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	hs := config.SplitList(*hosts)
	if len(hs) == 0 {
		return fmt.Errorf("%w: --hosts: at least one host is required", errUsage)
	}
	_, srv, err := certs.Ensure(*dir, hs...)
	if err != nil {
		return err
	}
	ks := filepath.Join(*dir, "server-keystore.pem")
	if err := os.WriteFile(ks, append(append([]byte{}, srv.KeyPEM...), srv.CertPEM...), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA %s, server certificate %s for %v, key store %s\n",
		filepath.Join(*dir, certs.CAFile), filepath.Join(*dir, certs.CertFile), hs, ks)
	return nil
}
