// Package config fills a program's configuration from flags and PYRITE_*
// environment variables once, at start. A flag given on the command line wins
// over the environment, which wins over the default. Validation reports every
// problem at once.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/kafkaconn"
)

// Dev addresses from DESIGN.md section 4.
const (
	DefaultBrokers   = "127.0.0.1:9092"
	DefaultRegistry  = "http://127.0.0.1:8081"
	DefaultIngest    = "127.0.0.1:8080"
	DefaultProjector = "127.0.0.1:8082"
	DefaultUpcaster  = "127.0.0.1:8083"
)

// Common is what every Pyrite program takes: where Kafka and the schema
// registry are, and where its own HTTP server listens.
type Common struct {
	Brokers     []string
	Registry    string
	Addr        string
	Compression Compression
	// Kafka is how the program's Kafka clients authenticate and encrypt
	// (--kafka-tls-*, --kafka-sasl-*); Kafka.Opts gives the client options.
	Kafka kafkaconn.Config
	// TLSCert and TLSKey, when set, make the program's HTTP server serve
	// HTTPS with this PEM certificate and key.
	TLSCert, TLSKey string
}

// Bind registers --brokers, --registry, --addr and --compression on fs, with
// defaults taken from PYRITE_BROKERS, PYRITE_REGISTRY, PYRITE_ADDR and
// PYRITE_COMPRESSION when set.
func (c *Common) Bind(fs *flag.FlagSet, defaultAddr string) {
	c.Brokers = SplitList(Env("PYRITE_BROKERS", DefaultBrokers))
	fs.Func("brokers", "comma-separated Kafka seed brokers (env PYRITE_BROKERS, default "+DefaultBrokers+")", func(s string) error {
		c.Brokers = SplitList(s)
		return nil
	})
	fs.StringVar(&c.Registry, "registry", Env("PYRITE_REGISTRY", DefaultRegistry), "schema registry base URL (env PYRITE_REGISTRY)")
	fs.StringVar(&c.Addr, "addr", Env("PYRITE_ADDR", defaultAddr), "host:port for this program's HTTP server (env PYRITE_ADDR)")
	c.Compression.BindCompression(fs)
	fs.StringVar(&c.TLSCert, "tls-cert", Env("PYRITE_TLS_CERT", ""), "PEM certificate: serve HTTPS instead of HTTP, with --tls-key (env PYRITE_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", Env("PYRITE_TLS_KEY", ""), "PEM private key of --tls-cert (env PYRITE_TLS_KEY)")
	c.Kafka.Bind(fs)
}

// Validate returns every problem with c, joined.
func (c *Common) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("--brokers: at least one broker is required"))
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("--brokers: %q is not host:port", b))
		}
	}
	if u, err := url.Parse(c.Registry); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--registry: %q is not an http(s) URL", RedactURL(c.Registry)))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr: %q is not host:port", c.Addr))
	}
	if err := c.Compression.Validate(); err != nil {
		errs = append(errs, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	errs = append(errs, c.Kafka.Validate())
	return errors.Join(errs...)
}

// RedactURL is s with any password in it replaced by "xxxxx", for messages: a
// registry URL may carry user:password. A value that is not a URL is shown
// only when it has no "@".
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if strings.Contains(s, "@") {
		return "(a value with credentials, not shown)"
	}
	return s
}

// Env returns the environment variable key, or def when it is unset or empty.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// SplitList splits a comma-separated value, trimming items and dropping
// empty ones.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Defaults reads flag defaults of other kinds from PYRITE_* variables. A value
// that does not parse leaves the default in place and is reported by Err, so
// Validate can list it beside the other problems.
type Defaults struct {
	errs []error
}

// Int returns the integer in key, or def when it is unset.
func (d *Defaults) Int(key string, def int) int {
	return parse(d, key, def, "an integer", strconv.Atoi)
}

// Bool returns the boolean in key, or def when it is unset.
func (d *Defaults) Bool(key string, def bool) bool {
	return parse(d, key, def, "true or false", strconv.ParseBool)
}

// Duration returns the duration in key (e.g. "30s"), or def when it is unset.
func (d *Defaults) Duration(key string, def time.Duration) time.Duration {
	return parse(d, key, def, "a duration", time.ParseDuration)
}

// Err returns every value that did not parse, joined.
func (d *Defaults) Err() error { return errors.Join(d.errs...) }

func parse[T any](d *Defaults, key string, def T, kind string, fn func(string) (T, error)) T {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	out, err := fn(v)
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("%s=%q is not %s", key, v, kind))
		return def
	}
	return out
}
