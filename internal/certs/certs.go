// Package certs makes the private certificate authority and server
// certificate of a development stack (pyrite dev --secure): an ECDSA P-256
// CA, and a server certificate it signs for the given host names and IP
// addresses. Ensure keeps them in a directory across runs, so clients that
// trust the CA file keep working after a restart.
//
// It is for local stacks and tests, not a replacement for a real PKI.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names Ensure writes in its directory.
const (
	CAFile   = "ca.pem"
	CAKey    = "ca-key.pem"
	CertFile = "server.pem"
	KeyFile  = "server-key.pem"
)

// validity of generated certificates.
const validity = 5 * 365 * 24 * time.Hour

// Pair is a PEM certificate and its PEM private key.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// TLS returns the pair as a tls.Certificate.
func (p Pair) TLS() (tls.Certificate, error) { return tls.X509KeyPair(p.CertPEM, p.KeyPEM) }

// NewCA makes a self-signed CA named cn.
func NewCA(cn string) (Pair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return issue(tmpl, nil)
}

// NewServer makes a server certificate for hosts (DNS names or IP
// addresses), signed by ca.
func NewServer(ca Pair, hosts ...string) (Pair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(tmpl, &ca)
}

func issue(tmpl *x509.Certificate, parent *Pair) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Pair{}, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(validity)
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		pc, err := parent.TLS()
		if err != nil {
			return Pair{}, fmt.Errorf("certs: CA: %w", err)
		}
		if signer, err = x509.ParseCertificate(pc.Certificate[0]); err != nil {
			return Pair{}, fmt.Errorf("certs: CA: %w", err)
		}
		signerKey = pc.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return Pair{}, fmt.Errorf("certs: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key) // PKCS#8: what Kafka's PEM key stores read
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// Ensure returns the CA and the server certificate kept in dir, making and
// writing them (keys mode 0600) on the first call. A server certificate
// that does not cover every one of hosts is made again, signed by the kept
// CA.
func Ensure(dir string, hosts ...string) (ca, server Pair, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ca, server, err
	}
	ca, err = load(dir, CAFile, CAKey)
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = NewCA("pyrite dev CA"); err == nil {
			err = save(dir, CAFile, CAKey, ca)
		}
	}
	if err != nil {
		return ca, server, fmt.Errorf("certs: CA in %s: %w", dir, err)
	}
	server, err = load(dir, CertFile, KeyFile)
	if err == nil && !covers(server, hosts) {
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		if server, err = NewServer(ca, hosts...); err == nil {
			err = save(dir, CertFile, KeyFile, server)
		}
	}
	if err != nil {
		return ca, server, fmt.Errorf("certs: server certificate in %s: %w", dir, err)
	}
	return ca, server, nil
}

func covers(p Pair, hosts []string) bool {
	c, err := p.TLS()
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || time.Now().After(leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func load(dir, certName, keyName string) (Pair, error) {
	c, err := os.ReadFile(filepath.Join(dir, certName))
	if err != nil {
		return Pair{}, err
	}
	k, err := os.ReadFile(filepath.Join(dir, keyName))
	if err != nil {
		return Pair{}, err
	}
	p := Pair{CertPEM: c, KeyPEM: k}
	if _, err := p.TLS(); err != nil {
		return Pair{}, err
	}
	return p, nil
}

func save(dir, certName, keyName string, p Pair) error {
	if err := os.WriteFile(filepath.Join(dir, keyName), p.KeyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, certName), p.CertPEM, 0o644)
}
