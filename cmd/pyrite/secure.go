package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/certs"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/kafkaconn"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// This file is the secure profile of `pyrite dev --secure`: Kafka with TLS,
// SCRAM users per service and ACLs on; the registry behind HTTP Basic roles;
// ingest and the projector's /v1/ behind bearer tokens. Everything a client
// needs is in <data-dir>/secure/credentials.json (mode 0600), made once per
// data directory, beside the CA and the server certificate.

// credentialsFile is the name of the credentials file in <data-dir>/secure.
const credentialsFile = "credentials.json"

// kafkaUser is a SASL user and its password.
type kafkaUser struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// credentials is the shape of credentials.json, a contract with clients.
type credentials struct {
	Kafka struct {
		CA        string               `json:"ca"`
		Mechanism string               `json:"mechanism"`
		Users     map[string]kafkaUser `json:"users"` // admin, ingest, upcaster, projector, registry
	} `json:"kafka"`
	Registry struct {
		Admin  string `json:"admin"` // user:password
		Writer string `json:"writer"`
		Reader string `json:"reader"`
	} `json:"registry"`
	Ingest struct {
		Tokens struct {
			All            string `json:"all"`
			DeploymentOnly string `json:"deployment-only"`
		} `json:"tokens"`
	} `json:"ingest"`
	Projector struct {
		Token string `json:"token"`
	} `json:"projector"`
}

// secureDev is what the secure profile adds to pyrite dev.
// Its methods work on a nil *secureDev (plain pyrite dev): no options, no
// authentication.
type secureDev struct {
	dir    string
	creds  credentials
	server tls.Certificate

	conns           map[string][]kgo.Opt // per principal: admin and each service
	registryUsers   *httpauth.Basic
	ingestTokens    *httpauth.Tokens
	projectorTokens *httpauth.Tokens
}

// secret returns 24 random bytes, URL-safe base64 (a valid bearer token and password).
func secret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newCredentials makes every secret at random.
func newCredentials(caPath string) (credentials, error) {
	var c credentials
	var errs []error
	s := func() string {
		v, err := secret()
		errs = append(errs, err)
		return v
	}
	c.Kafka.CA, c.Kafka.Mechanism = caPath, kafkaconn.ScramSHA256
	c.Kafka.Users = map[string]kafkaUser{"admin": {User: "admin", Password: s()}}
	for _, svc := range topology.Services() {
		c.Kafka.Users[svc] = kafkaUser{User: svc, Password: s()}
	}
	c.Registry.Admin, c.Registry.Writer, c.Registry.Reader = "registry-admin:"+s(), "registry-writer:"+s(), "registry-reader:"+s()
	c.Ingest.Tokens.All, c.Ingest.Tokens.DeploymentOnly = s(), s()
	c.Projector.Token = s()
	return c, errors.Join(errs...)
}

// setupSecure loads (or, the first time, makes) the CA, the server
// certificate for kafkaHost and the credentials in <dataDir>/secure. A data
// directory that a plain pyrite dev made is refused: its Kafka has neither
// the users nor the ACLs.
func setupSecure(dataDir, kafkaHost string) (*secureDev, error) {
	dir := filepath.Join(dataDir, "secure")
	credPath := filepath.Join(dir, credentialsFile)
	_, credErr := os.Stat(credPath)
	if errors.Is(credErr, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dataDir, "kafka", "meta.json")); err == nil {
			return nil, fmt.Errorf("%s holds the Kafka data of a plain pyrite dev; use another --data-dir for --secure", dataDir)
		}
	}
	hosts := []string{"127.0.0.1", "localhost"}
	if kafkaHost != "" && kafkaHost != "127.0.0.1" && kafkaHost != "localhost" {
		hosts = append(hosts, kafkaHost)
	}
	_, srv, err := certs.Ensure(dir, hosts...)
	if err != nil {
		return nil, err
	}
	cert, err := srv.TLS()
	if err != nil {
		return nil, err
	}
	sd := &secureDev{dir: dir, server: cert}
	caPath, err := filepath.Abs(filepath.Join(dir, certs.CAFile))
	if err != nil {
		return nil, err
	}
	if credErr == nil {
		data, err := os.ReadFile(credPath)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &sd.creds); err != nil {
			return nil, fmt.Errorf("%s: %w", credPath, err)
		}
		sd.creds.Kafka.CA = caPath
		return sd, sd.build()
	}
	if sd.creds, err = newCredentials(caPath); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(sd.creds, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(credPath, append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	return sd, sd.build()
}

// build makes the client options and the HTTP authentication from the credentials.
func (sd *secureDev) build() error {
	var errs []error
	sd.conns = map[string][]kgo.Opt{}
	for name, u := range sd.creds.Kafka.Users {
		c := kafkaconn.Config{CA: sd.creds.Kafka.CA, Mechanism: sd.creds.Kafka.Mechanism, User: u.User, Password: u.Password}
		opts, err := c.Opts()
		errs = append(errs, err)
		sd.conns[name] = opts
	}
	sd.registryUsers = httpauth.NewBasic()
	r := sd.creds.Registry
	errs = append(errs, sd.registryUsers.Add(r.Reader, httpauth.Reader), sd.registryUsers.Add(r.Writer, httpauth.Writer),
		sd.registryUsers.Add(r.Admin, httpauth.Admin))
	t := sd.creds.Ingest.Tokens
	var err error
	// "all" writes any type and may act for the body's userId; "deployment-only" writes
	// Deployment:* as itself.
	sd.ingestTokens, err = httpauth.NewTokens([]httpauth.Token{
		{Token: t.All, Principal: "dev-all", Types: []string{"*"}, SetUserID: true},
		{Token: t.DeploymentOnly, Principal: "dev-deployment", Types: []string{"Deployment:*"}},
	})
	errs = append(errs, err)
	sd.projectorTokens, err = httpauth.NewTokens([]httpauth.Token{{Token: sd.creds.Projector.Token, Principal: "dev-reader"}})
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(sd.dir, credentialsFile), err)
	}
	return nil
}

// serverTLS is the embedded Kafka's TLS (devkafka.Listen serves it); nil
// when not secure.
func (sd *secureDev) serverTLS() *tls.Config {
	if sd == nil {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{sd.server}, MinVersion: tls.VersionTLS12}
}

// clusterOpts turn the embedded Kafka's SASL and ACLs on: admin is a
// superuser, each service a SCRAM user bound by the declared ACLs.
func (sd *secureDev) clusterOpts() []kfake.Opt {
	if sd == nil {
		return nil
	}
	users := sd.creds.Kafka.Users
	opts := []kfake.Opt{
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(kafkaconn.ScramSHA256, users["admin"].User, users["admin"].Password),
	}
	for _, svc := range topology.Services() {
		opts = append(opts, kfake.User(kafkaconn.ScramSHA256, users[svc].User, users[svc].Password))
	}
	return opts
}

// conn returns the Kafka client options of principal (a service, or admin).
func (sd *secureDev) conn(principal string) []kgo.Opt {
	if sd == nil {
		return nil
	}
	return slices.Clip(sd.conns[principal]) // callers append their own options
}

// users maps each service to its Kafka user, for the ACLs.
func (sd *secureDev) users() topology.Users {
	u := topology.Users{}
	for _, svc := range topology.Services() {
		u[svc] = sd.creds.Kafka.Users[svc].User
	}
	return u
}

// applyACLs gives every service principal its declared ACLs (admin client).
func (sd *secureDev) applyACLs(ctx context.Context, topo *topology.Topology, adm *kadm.Client) error {
	if sd == nil {
		return nil
	}
	p, err := topo.PlanACLs(ctx, adm, sd.users())
	if err != nil {
		return err
	}
	return topology.ApplyACLs(ctx, adm, p)
}

// registry wraps the registry's handler in its Basic roles.
func (sd *secureDev) registry(h http.Handler) http.Handler {
	if sd == nil {
		return h
	}
	return sd.registryUsers.Registry(h)
}

// ingestAuth and projectorAuth are the bearer tokens of ingest and the projector.
func (sd *secureDev) ingestAuth() *httpauth.Tokens {
	if sd == nil {
		return nil
	}
	return sd.ingestTokens
}

// eventStoreToken is the ingest token the projector's saga and process manager append
// through the event store with: "all", which writes every type and keeps the events'
// ce_userid. Empty without --secure.
func (sd *secureDev) eventStoreToken() string {
	if sd == nil {
		return ""
	}
	return sd.creds.Ingest.Tokens.All
}

func (sd *secureDev) projectorAuth() *httpauth.Tokens {
	if sd == nil {
		return nil
	}
	return sd.projectorTokens
}

// registryAs is the registry URL base with role's credentials in it ("writer" or
// "reader"): Go's HTTP client, and the registry clients built on it, send them as
// HTTP Basic.
func (sd *secureDev) registryAs(base, role string) string {
	if sd == nil {
		return base
	}
	info := sd.creds.Registry.Reader
	if role == "writer" {
		info = sd.creds.Registry.Writer
	}
	return "http://" + info + "@" + strings.TrimPrefix(base, "http://")
}

// kafkaHost is the host of a host:port.
func kafkaHost(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}
