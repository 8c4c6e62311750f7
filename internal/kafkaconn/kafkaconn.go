// Package kafkaconn holds how a Pyrite program authenticates to Kafka and
// encrypts its connections: TLS (a CA to trust, a client certificate) and
// SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, through franz-go's sasl
// packages). Every program and CLI command binds the same flags, and every
// Kafka client it builds gets Config.Opts.
//
// The SASL password never comes from a flag value (flags show in process
// lists): it is read from PYRITE_KAFKA_SASL_PASSWORD or from the file named
// by --kafka-sasl-password-file. Errors name the flag or file, never the
// secret.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanism names, as Kafka spells them.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// PasswordEnv is the environment variable the SASL password is read from.
const PasswordEnv = "PYRITE_KAFKA_SASL_PASSWORD"

// Config is a program's Kafka security. The zero value is a plaintext,
// unauthenticated connection.
type Config struct {
	// TLS: CA is a PEM file of the CAs that sign the brokers' certificates
	// (empty: the system pool); Cert and Key a PEM client certificate for
	// mutual TLS. Any of them turns TLS on.
	CA, Cert, Key string
	// TLSOn turns TLS on with the system CAs and no client certificate.
	TLSOn bool
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	Mechanism string
	User      string
	// Password is the SASL password; PasswordFile, when set, is read
	// instead.
	Password     string
	PasswordFile string
}

// Bind registers the --kafka-tls-* and --kafka-sasl-* flags on fs, with
// defaults from the matching PYRITE_KAFKA_* variables; the password comes
// from PYRITE_KAFKA_SASL_PASSWORD.
func (c *Config) Bind(fs *flag.FlagSet) {
	env := func(k string) string { return os.Getenv(k) }
	fs.StringVar(&c.CA, "kafka-tls-ca", env("PYRITE_KAFKA_TLS_CA"),
		"PEM file of the CAs the Kafka brokers' certificates are checked against; setting it turns TLS on (env PYRITE_KAFKA_TLS_CA)")
	fs.BoolVar(&c.TLSOn, "kafka-tls", env("PYRITE_KAFKA_TLS") == "true",
		"connect to Kafka over TLS, trusting the system CAs (implied by the other --kafka-tls-* flags) (env PYRITE_KAFKA_TLS=true)")
	fs.StringVar(&c.Cert, "kafka-tls-cert", env("PYRITE_KAFKA_TLS_CERT"),
		"PEM client certificate for mutual TLS with Kafka, with --kafka-tls-key (env PYRITE_KAFKA_TLS_CERT)")
	fs.StringVar(&c.Key, "kafka-tls-key", env("PYRITE_KAFKA_TLS_KEY"),
		"PEM private key of --kafka-tls-cert (env PYRITE_KAFKA_TLS_KEY)")
	fs.StringVar(&c.Mechanism, "kafka-sasl-mechanism", env("PYRITE_KAFKA_SASL_MECHANISM"),
		"SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL (env PYRITE_KAFKA_SASL_MECHANISM)")
	fs.StringVar(&c.User, "kafka-sasl-user", env("PYRITE_KAFKA_SASL_USER"),
		"SASL user (the Kafka principal User:<name>); the password is read from "+PasswordEnv+" or --kafka-sasl-password-file (env PYRITE_KAFKA_SASL_USER)")
	fs.StringVar(&c.PasswordFile, "kafka-sasl-password-file", env("PYRITE_KAFKA_SASL_PASSWORD_FILE"),
		"file holding the SASL password (one line; a trailing newline is dropped) (env PYRITE_KAFKA_SASL_PASSWORD_FILE)")
	c.Password = os.Getenv(PasswordEnv)
}

// Validate returns every problem with c, joined. It reads no file.
func (c *Config) Validate() error {
	var errs []error
	switch strings.ToUpper(c.Mechanism) {
	case "":
		if c.User != "" {
			errs = append(errs, errors.New("--kafka-sasl-user is set but --kafka-sasl-mechanism is not"))
		}
	case Plain, ScramSHA256, ScramSHA512:
		if c.User == "" {
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-user", c.Mechanism))
		}
		if c.Password == "" && c.PasswordFile == "" {
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %s needs a password in %s or --kafka-sasl-password-file", c.Mechanism, PasswordEnv))
		}
	default:
		errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Mechanism))
	}
	if (c.Cert == "") != (c.Key == "") {
		errs = append(errs, errors.New("--kafka-tls-cert and --kafka-tls-key go together"))
	}
	return errors.Join(errs...)
}

// TLSEnabled reports whether connections use TLS.
func (c *Config) TLSEnabled() bool { return c.TLSOn || c.CA != "" || c.Cert != "" }

// Opts returns the client options c asks for (none for the zero value):
// kgo.DialTLSConfig and kgo.SASL. It reads the CA, certificate, key and
// password files, naming the file in an error.
func (c *Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if c.TLSEnabled() {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.Mechanism != "" {
		m, err := c.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka-tls-ca %s: no PEM certificate in it", c.CA)
		}
		tc.RootCAs = pool
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-cert/--kafka-tls-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c *Config) mechanism() (sasl.Mechanism, error) {
	pass := c.Password
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-sasl-password-file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return nil, fmt.Errorf("--kafka-sasl-password-file %s is empty", c.PasswordFile)
		}
	}
	switch strings.ToUpper(c.Mechanism) {
	case Plain:
		return plain.Auth{User: c.User, Pass: pass}.AsMechanism(), nil
	case ScramSHA256:
		return scram.Auth{User: c.User, Pass: pass}.AsSha256Mechanism(), nil
	default: // ScramSHA512; Validate rejected the rest
		return scram.Auth{User: c.User, Pass: pass}.AsSha512Mechanism(), nil
	}
}
