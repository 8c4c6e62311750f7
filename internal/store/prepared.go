package store

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// Prepared statements kept across batches on SQLite's writer connection.
//
// modernc's SQLite driver parses and compiles a statement's text on every Exec or Query that
// is not run through a prepared *sql.Stmt; for a multi-row upsert of 100 rows that is a large
// share of a batch's cost. A prepared statement keeps the compiled statement and only binds
// and steps it. A DB-level *sql.Stmt cannot be prepared while a transaction holds the one
// writer connection (the prepare would wait for that connection), so a statement seen in a
// batch is prepared before the next batch begins; its first batch runs it unprepared.
// PostgreSQL's driver already caches prepared statements per connection: there these methods
// are Exec and Query.

// maxPrepared bounds the statements kept. Callers keep their texts to a small fixed set (see
// ChunkSizes); past the bound, new texts run unprepared.
const maxPrepared = 256

type preparedCache struct {
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]struct{}
}

// ExecPrepared is Exec for a statement whose text recurs batch after batch: on SQLite it runs
// a statement prepared once on the writer connection.
func (tx *Tx) ExecPrepared(query string, args ...any) (sql.Result, error) {
	if st := tx.prepared(query); st != nil {
		return st.ExecContext(tx.ctx, args...)
	}
	return tx.Exec(query, args...)
}

// QueryPrepared is Query for a statement whose text recurs batch after batch, like
// ExecPrepared.
func (tx *Tx) QueryPrepared(query string, args ...any) (*sql.Rows, error) {
	if st := tx.prepared(query); st != nil {
		return st.QueryContext(tx.ctx, args...)
	}
	return tx.Query(query, args...)
}

// prepared returns query's statement bound to the transaction, nil when it is not prepared
// yet (it is then queued for preparing before the next batch) or the store is not SQLite.
func (tx *Tx) prepared(query string) *sql.Stmt {
	if tx.s.kind != SQLite {
		return nil
	}
	if st, ok := tx.stmts[query]; ok {
		return st
	}
	c := &tx.s.prepared
	c.mu.Lock()
	parent, ok := c.stmts[query]
	if !ok && len(c.stmts)+len(c.pending) < maxPrepared {
		if c.pending == nil {
			c.pending = make(map[string]struct{})
		}
		c.pending[query] = struct{}{}
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	// The statement is prepared on the writer connection, which this transaction holds, so
	// StmtContext reuses it; the transaction's Stmt is closed at commit, the prepared one
	// stays.
	st := tx.tx.StmtContext(tx.ctx, parent)
	if tx.stmts == nil {
		tx.stmts = make(map[string]*sql.Stmt)
	}
	tx.stmts[query] = st
	return st
}

// preparePending prepares the statements queued by earlier batches. It runs outside any
// transaction of the writer connection. A statement that fails to prepare stays unprepared
// (it runs as before) and is queued again when next used.
func (s *Store) preparePending(ctx context.Context) {
	c := &s.prepared
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	queries := make([]string, 0, len(c.pending))
	for q := range c.pending {
		queries = append(queries, q)
	}
	c.pending = nil
	c.mu.Unlock()
	for _, q := range queries {
		// Not under c.mu: preparing waits for the writer connection, which a batch holding it
		// may need c.mu to release.
		st, err := s.write.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.stmts[q]; ok {
			st.Close()
		} else {
			if c.stmts == nil {
				c.stmts = make(map[string]*sql.Stmt)
			}
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// closePrepared closes the kept statements.
func (s *Store) closePrepared() error {
	c := &s.prepared
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, st := range c.stmts {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, q)
	}
	return first
}

// ChunkSizes splits n rows into the sizes of the multi-row statements that write or read them:
// as many chunks of max as fit, then the rest as powers of two, largest first. The sizes come
// from a fixed set of at most log2(max)+2 values, so that each size's statement text recurs
// and can be prepared once (ExecPrepared) instead of being compiled anew for every remainder.
func ChunkSizes(n, max int) []int {
	var out []int
	for ; n >= max; n -= max {
		out = append(out, max)
	}
	for p := 1 << 30; n > 0; p >>= 1 {
		if p <= n {
			out = append(out, p)
			n -= p
		}
	}
	return out
}

// maxStatementTexts bounds the texts MultiRowStatement keeps.
const maxStatementTexts = 1024

type statementKey struct {
	head, tail string
	rows, cols int
}

type statementTexts struct {
	mu    sync.Mutex
	texts map[statementKey]string
}

// MultiRowStatement returns head, rows groups of cols placeholders numbered in order ("(?, ?),
// (?, ?)" on SQLite, "($1, $2), ($3, $4)" on PostgreSQL), and tail: the text of a multi-row
// statement of one of ChunkSizes' sizes. The texts are kept, so that a batch does not build
// them again (and ExecPrepared finds the same text).
func (tx *Tx) MultiRowStatement(head string, rows, cols int, tail string) string {
	key := statementKey{head: head, tail: tail, rows: rows, cols: cols}
	c := &tx.s.texts
	c.mu.Lock()
	q, ok := c.texts[key]
	c.mu.Unlock()
	if ok {
		return q
	}
	var b strings.Builder
	b.WriteString(head)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		b.WriteString(tx.s.placeholders(i*cols+1, cols))
		b.WriteByte(')')
	}
	b.WriteString(tail)
	q = b.String()
	c.mu.Lock()
	if c.texts == nil {
		c.texts = make(map[statementKey]string)
	}
	if len(c.texts) < maxStatementTexts {
		c.texts[key] = q
	}
	c.mu.Unlock()
	return q
}
