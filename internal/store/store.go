// Package store keeps the projector's read models in SQL: SQLite (embedded default, pure Go
// driver, one file) or PostgreSQL, behind one API and the same SQL text.
//
// Guarantees:
//   - Effectively-once projections: ApplyBatch applies a batch of Kafka records and stores the
//     projection's next offset per topic/partition in the same database transaction. A crash
//     loses both or neither; on assignment the runner seeks to Positions. Records below the
//     stored position are skipped, so redelivery never double-applies, and positions are
//     updated by compare-and-set, so a second consumer that still works on a partition after
//     a rebalance fails with ErrPositionConflict instead of applying twice.
//   - Migrations (embedded SQL, recorded in schema_migrations) are applied by Open in one
//     transaction, serialized across processes; reopening applies nothing.
//   - A Store is safe for concurrent use. SQLite runs in WAL mode with one writer connection
//     (batches are serialized, readers never wait for writers) and a busy timeout; PostgreSQL
//     uses a small pool at READ COMMITTED.
//   - Reads see committed batches only. WaitVersion is woken by the commit of the batch that
//     reaches the version in this process and polls slowly for commits made elsewhere.
//
// Times are stored as Unix milliseconds (BIGINT) so the same SQL runs on both databases.
// With SQLite, synchronous=NORMAL: a power loss may drop the last batches, together with their
// positions, which are then consumed again.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the pure Go "sqlite" database/sql driver
)

// Kind names a database backend.
type Kind string

// Backends.
const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Store is an open read-model database. Close it when done.
type Store struct {
	kind  Kind
	write *sql.DB // SQLite: the one writer connection; PostgreSQL: the pool
	read  *sql.DB // SQLite: reader pool (query_only); PostgreSQL: same as write
	watch *watcher
	poll  time.Duration
	now   func() time.Time
	// modules are the domain modules' migrations (WithMigrations).
	modules []moduleMigrations
	// prepared are the statements kept on SQLite's writer connection (ExecPrepared).
	prepared preparedCache
	texts    statementTexts // MultiRowStatement's
}

// Option configures Open.
type Option func(*Store)

// WithPollInterval sets how often WaitVersion re-reads the database when no local commit woke
// it, which only matters when another process applies the projection. Default 250ms.
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.poll = d
		}
	}
}

// WithClock sets the clock used for updated_at and processed_at columns. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// Open opens the store at url and applies pending migrations:
//   - postgres://... or postgresql://...: PostgreSQL (pgx; any libpq URL parameter, e.g.
//     search_path=myschema, sslmode=disable).
//   - sqlite:///abs/path.db, sqlite://rel/path.db, sqlite:path.db or a plain file path: SQLite.
//     The parent directory is created; the file is created if missing.
//
// Any other scheme, ":memory:" and paths containing '?' fail with ErrUnsupportedURL. Open
// fails with ErrSchemaTooNew when the database was migrated by a newer build.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	kind, target, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	s := &Store{kind: kind, watch: newWatcher(), poll: 250 * time.Millisecond, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	switch kind {
	case Postgres:
		cfg, err := pgx.ParseConfig(target)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedURL, err)
		}
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.write, s.read = db, db
	case SQLite:
		if dir := filepath.Dir(target); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("store: create directory for %s: %w", target, err)
			}
		}
		const common = "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
		w, err := sql.Open("sqlite", target+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", target, err)
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		s.write = w
		// The writer connection sets WAL mode (persistent in the file) before readers open.
		if err := w.PingContext(ctx); err != nil {
			w.Close()
			return nil, fmt.Errorf("store: open %s: %w", target, err)
		}
		r, err := sql.Open("sqlite", target+common+"&_pragma=query_only(1)")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("store: open %s: %w", target, err)
		}
		r.SetMaxOpenConns(4)
		r.SetMaxIdleConns(4)
		s.read = r
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// parseURL tells the backend and returns the driver's connection string (the URL itself for
// PostgreSQL, the file path for SQLite).
func parseURL(url string) (Kind, string, error) {
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return Postgres, url, nil
	case strings.HasPrefix(lower, "sqlite://"):
		return sqlitePath(url[len("sqlite://"):])
	case strings.HasPrefix(lower, "sqlite:"):
		return sqlitePath(url[len("sqlite:"):])
	case strings.Contains(url, "://"):
		return "", "", fmt.Errorf("%w: %q (want postgres://, sqlite:// or a file path)", ErrUnsupportedURL, url)
	}
	return sqlitePath(url)
}

func sqlitePath(p string) (Kind, string, error) {
	switch {
	case p == "":
		return "", "", fmt.Errorf("%w: empty SQLite path", ErrUnsupportedURL)
	case p == ":memory:" || strings.HasPrefix(p, "file:") || strings.HasPrefix(p, ":memory:"):
		return "", "", fmt.Errorf("%w: %q: the store needs a file (in-memory databases are per connection)", ErrUnsupportedURL, p)
	case strings.ContainsAny(p, "?#\x00"):
		return "", "", fmt.Errorf("%w: SQLite path %q contains '?', '#' or NUL", ErrUnsupportedURL, p)
	}
	return SQLite, p, nil
}

// Kind returns the backend.
func (s *Store) Kind() Kind { return s.kind }

// Close closes the database connections. Waiters in WaitVersion keep waiting until their
// contexts end.
func (s *Store) Close() error {
	var errs []error
	if s.read != nil && s.read != s.write {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		errs = append(errs, s.closePrepared(), s.write.Close())
	}
	return errors.Join(errs...)
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) { return readMigrations(migrationFiles, "migrations") }

// readMigrations returns the migrations in dir of fsys in version order. File names are
// NNNN_name.sql.
func readMigrations(fsys fs.FS, dir string) ([]migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimSuffix(filepath.Base(n), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration file %s is not NNNN_name.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrationLock is the PostgreSQL advisory lock key that serializes migrations ("pyrite").
const migrationLock = 0x707972697465

// migrate applies every embedded migration newer than the database's, all in one
// transaction. SQLite serializes through BEGIN IMMEDIATE, PostgreSQL through an advisory
// transaction lock.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	if s.kind == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if n := len(ms); n > 0 && current > ms[n-1].version {
		return fmt.Errorf("%w: database at version %d, this build knows %d", ErrSchemaTooNew, current, ms[n-1].version)
	}
	now := s.now().UnixMilli()
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		for _, stmt := range splitStatements(m.sql) {
			if _, err := tx.ExecContext(ctx, s.dialect(stmt)); err != nil {
				return fmt.Errorf("store: migration %d_%s: %w", m.version, m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", m.version, m.name, now); err != nil {
			return fmt.Errorf("store: migration %d_%s: %w", m.version, m.name, err)
		}
	}
	if err := s.migrateModules(ctx, tx, s.modules); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// Query runs a query on the read side (committed batches only), for the read models of
// domain modules. Placeholders are $1, $2, ... on both backends.
func (s *Store) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.read.QueryContext(ctx, query, args...)
}

// QueryRow is Query for at most one row.
func (s *Store) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.read.QueryRowContext(ctx, query, args...)
}

// WithMigrations adds the migrations of a domain module's read models: the NNNN_name.sql
// files at the root of fsys, numbered from 1 on their own and recorded in module_migrations
// under module. Open applies them after the store's own, in the same transaction.
func WithMigrations(module string, fsys fs.FS) Option {
	return func(s *Store) { s.modules = append(s.modules, moduleMigrations{module, fsys}) }
}

type moduleMigrations struct {
	module string
	fsys   fs.FS
}

// migrateModules applies every migration of mods newer than its module's recorded version.
func (s *Store) migrateModules(ctx context.Context, tx *sql.Tx, mods []moduleMigrations) error {
	if len(mods) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS module_migrations (
		module     TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL,
		PRIMARY KEY (module, version))`); err != nil {
		return fmt.Errorf("store: migrate modules: %w", err)
	}
	now := s.now().UnixMilli()
	for _, mm := range mods {
		ms, err := readMigrations(mm.fsys, ".")
		if err != nil {
			return fmt.Errorf("store: migrations of %s: %w", mm.module, err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM module_migrations WHERE module = $1", mm.module).Scan(&current); err != nil {
			return fmt.Errorf("store: migrations of %s: %w", mm.module, err)
		}
		for _, m := range ms {
			if m.version <= current {
				continue
			}
			for _, stmt := range splitStatements(m.sql) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("store: migration %s %d_%s: %w", mm.module, m.version, m.name, err)
				}
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO module_migrations (module, version, name, applied_at) VALUES ($1, $2, $3, $4)",
				mm.module, m.version, m.name, now); err != nil {
				return fmt.Errorf("store: migration %s %d_%s: %w", mm.module, m.version, m.name, err)
			}
		}
	}
	return nil
}

// Migrate applies a domain module's migrations on an open store, as WithMigrations does at
// Open (in one transaction, serialized with every other migration): for a component that
// owns tables of its own (a process manager's state) and may run on a store opened without
// them. Applying the same migrations again, here or at Open, applies nothing.
func (s *Store) Migrate(ctx context.Context, module string, fsys fs.FS) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate %s: %w", module, err)
	}
	defer tx.Rollback()
	if s.kind == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("store: migrate %s: lock: %w", module, err)
		}
	}
	if err := s.migrateModules(ctx, tx, []moduleMigrations{{module, fsys}}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate %s: %w", module, err)
	}
	return nil
}

// dialect adapts a migration statement to the backend: a table declared ") WITHOUT ROWID"
// (SQLite's key-only table) is a plain table on PostgreSQL, which has no such option.
func (s *Store) dialect(stmt string) string {
	if s.kind == Postgres {
		return strings.Replace(stmt, ") WITHOUT ROWID", ")", 1)
	}
	return stmt
}

// splitStatements splits a migration on ";" at line ends. Migrations hold plain DDL: no
// semicolons inside strings or bodies; "--" comment lines are dropped.
func splitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}
