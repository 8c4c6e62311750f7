// Package codec encodes and decodes Pyrite event values: Avro bodies in the Confluent wire
// format (byte 0x00, a 4-byte big-endian schema ID, the Avro binary body), with schemas
// fetched from a Confluent-compatible schema registry, plus the JSON form used by HTTP ingest
// and tools.
//
// Guarantees:
//   - A Codec is safe for concurrent use. Each schema ID and each subject/version is fetched
//     from the registry once and cached for the Codec's life (registered schemas are
//     immutable); concurrent lookups of the same key share one registry call. The newest
//     version of a subject is cached and refreshed after a TTL (WithLatestTTL). After warm-up
//     Encode and Decode make no registry calls.
//   - Decode resolves the writer schema (the ID in the frame) into the caller's reader schema
//     by Avro schema resolution, so data written with any compatible version reads as the
//     reader version; fields the writer lacks get the reader's defaults.
//   - Decode rejects truncated bodies and bodies with trailing bytes; decoded strings never
//     alias the input slice.
//   - Errors wrap the sentinels in errors.go: ErrRegistryUnavailable is transient (retry),
//     the others are permanent for the value at hand.
//
// Every schema version (and every writer/reader resolution) is parsed with its own
// hamba/avro schema cache and gets its own frozen hamba/avro API, because hamba keys its
// parsed-name cache by name and its encoder cache by a fingerprint of the Parsing Canonical
// Form, which drops defaults: two versions that differ only in a default would otherwise
// share one encoder. Each keeps hamba's compiled encoders and decoders per Go type, so the
// hot path skips hamba's per-call fingerprint lookup.
//
// For Go structs whose fields are all of the simple kinds (numbers, strings, bytes, enums as
// strings, timestamps as time.Time, nullable unions as pointers) the codec also compiles,
// once per schema (or writer/reader pair) and struct type, a flat plan that encodes and
// decodes without hamba's per-field calls (fast.go). A plan produces exactly hamba's bytes
// and values, and hands any value or body it cannot handle back to hamba, so behaviour and
// errors are hamba's; everything else (maps, nested records, arrays, fixed, other unions,
// type promotions) goes through hamba directly. Encode's results of up to 128 bytes, and the
// copies that small decoded strings are cut from, are carved from shared 4 KiB chunks
// (arena.go): a retained result or string keeps its chunk alive.
//
// JSON takes a like path (jsonenc.go): for records of scalars, enums, nullable scalars and
// nested records, AppendJSON and AppendJSONText write the Avro bytes straight from ParseJSON's
// tree or from the text itself (read in place with internal/jsonscan), and hand anything
// else, errors included, to FromJSON and Encode; tests and a fuzz target hold the two paths
// to the same bytes and errors.
//
// The package knows Avro and the registry, not Kafka.
package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"
	"golang.org/x/sync/singleflight"
)

// Registry is the part of a schema registry client the codec uses. *srclient.SchemaRegistryClient
// satisfies it. Its methods are called without a context; a Codec waits for them only as long
// as the caller's context allows (the call itself runs on).
//
// If the registry value also has GetSubjectVersionsById(int) (srclient.SubjectVersionResponse,
// error), as srclient's client does, ByID uses it once per ID to learn the schema's version.
//
// srclient's client caches every answer itself, including GetLatestSchema's, forever; turn its
// cache off (CachingEnabled(false)) so that Latest sees new versions: the Codec caches
// everything that can be cached.
type Registry interface {
	GetSchema(schemaID int) (*srclient.Schema, error)
	GetLatestSchema(subject string) (*srclient.Schema, error)
	GetSchemaByVersion(subject string, version int) (*srclient.Schema, error)
}

// versionLister is the optional registry method ByID uses to fill Schema.Version.
type versionLister interface {
	GetSubjectVersionsById(schemaID int) (srclient.SubjectVersionResponse, error)
}

// Schema is one registered Avro schema. Values returned by a Codec are shared and must not be
// modified.
type Schema struct {
	// ID is the registry's global schema ID, the one in the wire format's header.
	ID int
	// Subject is the subject the schema was first looked up under; for a lookup by ID it is the
	// subject the registry lists for the ID's record, or the record's full name.
	Subject string
	// Version is the subject version, 0 when the registry did not say.
	Version int
	// Avro is the parsed schema.
	Avro avro.Schema
	// Text is the schema as the registry returned it.
	Text string

	bind *binding
}

// binding is a schema's private hamba API with pools of readers and writers bound to it.
type binding struct {
	api     avro.API
	readers sync.Pool // *avro.Reader
	writers sync.Pool // *avro.Writer
	typed   typed
	json    jsonPlanState // AppendJSON's plan (jsonenc.go)

	// writer and reader are the schemas the binding's schema was made of: the same schema
	// twice for a plain one, the writer's and the reader's for a resolution. The fast path
	// (fast.go) compiles its decoders from them.
	writer, reader avro.Schema

	// resolutions of data written with this (writer) schema into reader schemas,
	// copy-on-write under resMu.
	resMu       sync.Mutex
	resolutions atomic.Pointer[[]resolution]
}

// Limits applied to every decode. A Kafka record is at most a few MiB; the limits stop a
// corrupt length prefix from allocating more than the record could hold.
const (
	maxByteSlice  = 8 << 20 // bytes of one string or bytes value
	maxSliceAlloc = 1 << 20 // elements of one array
)

func newBinding(writer, reader avro.Schema) *binding {
	b := &binding{api: avro.Config{
		MaxByteSliceSize:  maxByteSlice,
		MaxSliceAllocSize: maxSliceAlloc,
	}.Freeze(), writer: writer, reader: reader}
	b.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(b.api)) }
	b.writers.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(b.api)) }
	return b
}

// NewSchema parses text (with a fresh schema cache) into a Schema that a Codec can encode
// with and decode into, for schemas that do not come from the registry, e.g. the files in
// schemas/. id is written into frames by Encode; use the registry's ID for data that will be
// decoded elsewhere. An unparseable text wraps ErrUnsupportedSchema.
func NewSchema(id int, subject string, version int, text string) (*Schema, error) {
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("%w: parse schema %d (%s): %v", ErrUnsupportedSchema, id, subject, err)
	}
	if subject == "" {
		if n, ok := s.(avro.NamedSchema); ok {
			subject = n.FullName()
		}
	}
	return &Schema{ID: id, Subject: subject, Version: version, Avro: s, Text: text, bind: newBinding(s, s)}, nil
}

// Option configures a Codec.
type Option func(*Codec)

// WithLatestTTL sets how long Latest serves a subject's newest version before asking the
// registry again. Default one minute; non-positive values keep the default. While the
// registry is unavailable, Latest keeps serving the version it has and asks again at most
// every min(ttl, 5s).
func WithLatestTTL(d time.Duration) Option {
	return func(c *Codec) {
		if d > 0 {
			c.latestTTL = d
		}
	}
}

// WithNegativeTTL sets how long an ID the registry said it does not know is answered with
// ErrUnknownSchemaID without asking again, so a stream of records with a bad ID does not
// become a stream of registry calls. Default 30 seconds; zero or less disables it.
func WithNegativeTTL(d time.Duration) Option {
	return func(c *Codec) { c.negativeTTL = d }
}

// Codec encodes and decodes framed Avro values and caches schemas. Create it with New.
type Codec struct {
	reg         Registry
	latestTTL   time.Duration
	negativeTTL time.Duration

	sf          singleflight.Group
	idMu        sync.Mutex                      // serializes writers of byID
	byID        atomic.Pointer[map[int]*Schema] // copy-on-write: read on every Decode
	byVersion   sync.Map                        // subjectVersion -> *Schema
	latest      sync.Map                        // string -> *latestEntry
	unknownID   sync.Map                        // int -> time.Time (answer ErrUnknownSchemaID until then)
	guidID      sync.Map                        // GUID -> int, the GUID's schema ID
	unknownGUID sync.Map                        // GUID -> time.Time, as unknownID
	adhoc       sync.Map                        // *Schema -> *binding, for Schemas built without NewSchema
	out         outArena                        // Encode's results (see arena.go)
}

type subjectVersion struct {
	subject string
	version int
}

type latestEntry struct {
	s    *Schema
	next time.Time // ask the registry again from then on
}

// New returns a Codec that looks schemas up in reg. In production reg is a srclient client
// with its own cache off (see Registry). reg may be nil for a Codec that only encodes with
// schemas from NewSchema; its lookups then wrap ErrRegistryUnavailable.
func New(reg Registry, opts ...Option) *Codec {
	c := &Codec{reg: reg, latestTTL: time.Minute, negativeTTL: 30 * time.Second}
	for _, o := range opts {
		o(c)
	}
	return c
}

// ByID returns the schema with the given global ID. Unknown IDs wrap ErrUnknownSchemaID (and
// are remembered as unknown for the negative TTL); a registry that cannot be reached, or ctx
// ending first, wraps ErrRegistryUnavailable.
func (c *Codec) ByID(ctx context.Context, id int) (*Schema, error) {
	if s := c.cachedID(id); s != nil {
		return s, nil
	}
	if id < 0 || int64(id) > 1<<32-1 {
		return nil, fmt.Errorf("%w: %d is out of range", ErrUnknownSchemaID, id)
	}
	if until, ok := c.unknownID.Load(id); ok && time.Now().Before(until.(time.Time)) {
		return nil, fmt.Errorf("%w: %d (cached answer)", ErrUnknownSchemaID, id)
	}
	return c.do(ctx, "id\x00"+strconv.Itoa(id), func() (*Schema, error) {
		if s := c.cachedID(id); s != nil {
			return s, nil
		}
		rs, err := c.reg.GetSchema(id)
		if err != nil {
			err = classify(err, ErrUnknownSchemaID, fmt.Sprintf("schema id %d", id))
			if errors.Is(err, ErrUnknownSchemaID) && c.negativeTTL > 0 {
				c.unknownID.Store(id, time.Now().Add(c.negativeTTL))
			}
			return nil, err
		}
		subject, version := "", 0
		if rs != nil {
			version = rs.Version()
		}
		if vl, ok := c.reg.(versionLister); ok {
			subject, version = c.subjectVersionOf(vl, id, rs, version)
		}
		return c.intern(id, rs, subject, version)
	})
}

// subjectVersionOf picks, among the subject/versions the registry lists for an ID, the one
// named after the record (RecordNameStrategy), else the first. Failures leave the version
// unknown: it is metadata, not needed to decode.
func (c *Codec) subjectVersionOf(vl versionLister, id int, rs *srclient.Schema, version int) (string, int) {
	pairs, err := vl.GetSubjectVersionsById(id)
	if err != nil || len(pairs) == 0 || rs == nil {
		return "", version
	}
	var p struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	full := ""
	if json.Unmarshal([]byte(rs.Schema()), &p) == nil && p.Name != "" {
		full = p.Name
		if p.Namespace != "" && !strings.Contains(p.Name, ".") {
			full = p.Namespace + "." + p.Name
		}
	}
	for _, sv := range pairs {
		if sv.Subject == full {
			return sv.Subject, sv.Version
		}
	}
	return pairs[0].Subject, pairs[0].Version
}

// Version returns version (1 or more) of subject. Unknown subjects or versions wrap
// ErrUnknownSubject.
func (c *Codec) Version(ctx context.Context, subject string, version int) (*Schema, error) {
	key := subjectVersion{subject, version}
	if s, ok := c.byVersion.Load(key); ok {
		return s.(*Schema), nil
	}
	if version < 1 {
		return nil, fmt.Errorf("%w: %s version %d (versions start at 1)", ErrUnknownSubject, subject, version)
	}
	return c.do(ctx, "v\x00"+subject+"\x00"+strconv.Itoa(version), func() (*Schema, error) {
		if s, ok := c.byVersion.Load(key); ok {
			return s.(*Schema), nil
		}
		rs, err := c.reg.GetSchemaByVersion(subject, version)
		if err != nil {
			return nil, classify(err, ErrUnknownSubject, fmt.Sprintf("subject %s version %d", subject, version))
		}
		if rs == nil {
			return nil, fmt.Errorf("%w: registry returned no schema for %s version %d", ErrUnsupportedSchema, subject, version)
		}
		s, err := c.intern(rs.ID(), rs, subject, version)
		if err != nil {
			return nil, err
		}
		c.byVersion.Store(key, s)
		return s, nil
	})
}

// Latest returns the newest registered version of subject. The answer is cached for the
// latest TTL; after it the next call asks the registry (one call however many goroutines
// ask). If the registry is unavailable then, the cached version is returned without error.
// An unknown subject wraps ErrUnknownSubject.
func (c *Codec) Latest(ctx context.Context, subject string) (*Schema, error) {
	var old *latestEntry
	if e, ok := c.latest.Load(subject); ok {
		old = e.(*latestEntry)
		if time.Now().Before(old.next) {
			return old.s, nil
		}
	}
	s, err := c.do(ctx, "latest\x00"+subject, func() (*Schema, error) {
		if e, ok := c.latest.Load(subject); ok && time.Now().Before(e.(*latestEntry).next) {
			return e.(*latestEntry).s, nil
		}
		rs, err := c.reg.GetLatestSchema(subject)
		if err != nil {
			err = classify(err, ErrUnknownSubject, "subject "+subject+" latest version")
			if errors.Is(err, ErrUnknownSubject) {
				c.latest.Delete(subject)
			} else if old != nil && errors.Is(err, ErrRegistryUnavailable) {
				c.latest.Store(subject, &latestEntry{s: old.s, next: time.Now().Add(min(c.latestTTL, 5*time.Second))})
			}
			return nil, err
		}
		if rs == nil {
			return nil, fmt.Errorf("%w: registry returned no schema for %s", ErrUnsupportedSchema, subject)
		}
		s, err := c.intern(rs.ID(), rs, subject, rs.Version())
		if err != nil {
			return nil, err
		}
		c.latest.Store(subject, &latestEntry{s: s, next: time.Now().Add(c.latestTTL)})
		if rs.Version() > 0 {
			c.byVersion.LoadOrStore(subjectVersion{subject, rs.Version()}, s)
		}
		return s, nil
	})
	if err != nil && old != nil && errors.Is(err, ErrRegistryUnavailable) {
		return old.s, nil
	}
	return s, err
}

// do runs fn once per key at a time and waits for it as long as ctx allows.
func (c *Codec) do(ctx context.Context, key string, fn func() (*Schema, error)) (*Schema, error) {
	if c.reg == nil {
		return nil, fmt.Errorf("%w: the codec has no registry", ErrRegistryUnavailable)
	}
	ch := c.sf.DoChan(key, func() (any, error) { return fn() })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Schema), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the registry: %w", ErrRegistryUnavailable, context.Cause(ctx))
	}
}

// intern parses a registry answer and stores it under its ID, returning the Schema already
// stored for that ID if there is one, so each ID has one *Schema.
func (c *Codec) intern(id int, rs *srclient.Schema, subject string, version int) (*Schema, error) {
	if s := c.cachedID(id); s != nil {
		return s, nil
	}
	if rs == nil {
		return nil, fmt.Errorf("%w: registry returned no schema for id %d", ErrUnsupportedSchema, id)
	}
	if t := rs.SchemaType(); t != nil && *t != srclient.Avro && *t != "" {
		return nil, fmt.Errorf("%w: schema %d is %s, not AVRO", ErrUnsupportedSchema, id, *t)
	}
	if len(rs.References()) > 0 {
		return nil, fmt.Errorf("%w: schema %d has references", ErrUnsupportedSchema, id)
	}
	s, err := NewSchema(id, subject, version, rs.Schema())
	if err != nil {
		return nil, err
	}
	return c.storeID(id, s), nil
}

func (c *Codec) cachedID(id int) *Schema {
	if m := c.byID.Load(); m != nil {
		return (*m)[id]
	}
	return nil
}

// storeID adds s under id unless a Schema is there already, and returns the one stored.
func (c *Codec) storeID(id int, s *Schema) *Schema {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	old := c.byID.Load()
	if old != nil {
		if have := (*old)[id]; have != nil {
			return have
		}
	}
	m := map[int]*Schema{id: s}
	if old != nil {
		maps.Copy(m, *old)
	}
	c.byID.Store(&m)
	return s
}

var statusRE = regexp.MustCompile(`^([1-5][0-9][0-9]) `)

// classify maps a registry client error to a sentinel. notFound is the sentinel for a plain
// HTTP 404; Confluent error codes 40401/40402 (subject/version) and 40403 (schema) are
// mapped by code; 408, 429 and 5xx (and Confluent 5xxxx codes) are unavailable; other 4xx
// answers (401, 403, 422, ...) wrap no sentinel (a configuration problem, not transient);
// errors without a status (network, timeout, unparseable answer) are unavailable. srclient
// reports an error answer either as srclient.Error or, when its body is not JSON, as an error
// whose text is the HTTP status line.
func classify(err error, notFound error, what string) error {
	code := 0
	msg := err.Error()
	var se srclient.Error
	var sep *srclient.Error
	switch {
	case errors.As(err, &se):
		code, msg = se.Code, se.Message
	case errors.As(err, &sep) && sep != nil:
		code, msg = sep.Code, sep.Message
	default:
		if m := statusRE.FindStringSubmatch(msg); m != nil {
			code, _ = strconv.Atoi(m[1])
		}
	}
	switch {
	case code == 40401 || code == 40402:
		return fmt.Errorf("%w: %s: %s", ErrUnknownSubject, what, msg)
	case code == 40403:
		return fmt.Errorf("%w: %s: %s", ErrUnknownSchemaID, what, msg)
	case code == 404 || (code >= 40400 && code < 40500):
		return fmt.Errorf("%w: %s: %s", notFound, what, msg)
	case code == 408 || code == 429 || (code >= 500 && code < 600) || (code >= 50000 && code < 60000):
		return fmt.Errorf("%w: %s: registry answered %d: %s", ErrRegistryUnavailable, what, code, msg)
	case code != 0:
		return fmt.Errorf("codec: %s: registry answered %d: %s", what, code, msg)
	}
	// Network errors (*url.Error from the HTTP client), timeouts, and answers that are not
	// JSON (a proxy's error page) all mean the registry could not be asked properly.
	return fmt.Errorf("%w: %s: %w", ErrRegistryUnavailable, what, err)
}
