package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// dialect is what differs between the two SQL engines behind the store:
// SQLite (one host, a file) and PostgreSQL (shared by every daemon of a
// cluster). Queries are written once with ? placeholders; rebind turns
// them into the engine's form. Only the few fragments whose SQL truly
// differs are dialect methods.
type dialect interface {
	// name is "sqlite" or "postgres" (logs and errors).
	name() string
	// rebind rewrites ? placeholders (outside string literals).
	rebind(query string) string
	// metaHas is a WHERE term with two placeholders (key, value): the
	// JSON object in column table.meta holds key with that string value.
	metaHas(table string) string
	// metaValue is an expression with one placeholder (key): the string
	// value of key in the JSON object in column meta (NULL when absent).
	metaValue() string
	// textBytes is an expression: the length in bytes of text column col.
	textBytes(col string) string
	// lockRowsOf ends a SELECT that reads rows of table alias in a write
	// transaction: it locks them against concurrent writers (other
	// daemons) until the transaction ends. SQLite: "" (its write
	// transactions are exclusive already: BEGIN IMMEDIATE).
	lockRowsOf(alias string) string
	// noLimit is the LIMIT argument meaning "all rows".
	noLimit() any
	// notify, when the engine has a change feed, is a statement with two
	// placeholders (channel, payload) run inside write transactions;
	// "" when there is none.
	notify() string
	// quotaLock, when writers of other processes share the database, is
	// a statement with two placeholders (a lock class, a container) run
	// as its own statement in a quota-checked write's transaction before
	// the check: it serialises the writes checking that class's quota of
	// that container until their transactions end, and the check's read
	// then sees what the previous holder committed. "" when writes are
	// serialised already (SQLite: BEGIN IMMEDIATE).
	quotaLock() string
}

type sqliteDialect struct{}

func (sqliteDialect) name() string                { return "sqlite" }
func (sqliteDialect) rebind(q string) string      { return q }
func (sqliteDialect) textBytes(col string) string { return "length(CAST(" + col + " AS BLOB))" }
func (sqliteDialect) noLimit() any                { return -1 }
func (sqliteDialect) notify() string              { return "" }
func (sqliteDialect) quotaLock() string           { return "" }
func (sqliteDialect) metaHas(table string) string {
	return "EXISTS (SELECT 1 FROM json_each(" + table + ".meta) AS m WHERE m.key = ? AND m.type = 'text' AND m.value = ?)"
}
func (sqliteDialect) metaValue() string { return "json_extract(meta, '$.' || json_quote(?))" }

type postgresDialect struct{}

func (postgresDialect) name() string                { return "postgres" }
func (postgresDialect) textBytes(col string) string { return "octet_length(" + col + ")" }
func (postgresDialect) noLimit() any                { return nil } // LIMIT NULL: no limit
func (postgresDialect) notify() string              { return "SELECT pg_notify(?, ?)" }

// The two-int4 form: its key space never meets the one-bigint form's
// (migrationLockKey); hashtext collisions only serialise more. Released
// at commit or rollback (or when the connection dies).
func (postgresDialect) quotaLock() string {
	return "SELECT pg_advisory_xact_lock(?::int4, hashtext(?::text))"
}
func (postgresDialect) metaHas(table string) string {
	// to_jsonb of a text is a JSON string: equal only to a string value.
	return "(" + table + ".meta::jsonb -> ?::text) = to_jsonb(?::text)"
}
func (postgresDialect) metaValue() string { return "meta::jsonb ->> ?::text" }

// rebind numbers the ? placeholders $1, $2, … skipping string literals,
// quoted identifiers and comments.
func (postgresDialect) rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch c {
		case '\'', '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case '-':
			if i+1 < len(q) && q[i+1] == '-' {
				j := strings.IndexByte(q[i:], '\n')
				if j < 0 {
					b.WriteString(q[i:])
					return b.String()
				}
				b.WriteString(q[i : i+j+1])
				i += j
				continue
			}
			b.WriteByte(c)
		case '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// conn is the store's database handle: database/sql with the dialect's
// rebinding applied to every query.
type conn struct {
	db *sql.DB
	d  dialect
}

func (c *conn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.db.ExecContext(ctx, c.d.rebind(q), args...)
}

func (c *conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.db.QueryContext(ctx, c.d.rebind(q), args...)
}

func (c *conn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return c.db.QueryRowContext(ctx, c.d.rebind(q), args...)
}

func (c *conn) BeginTx(ctx context.Context, o *sql.TxOptions) (*txn, error) {
	tx, err := c.db.BeginTx(ctx, o)
	if err != nil {
		return nil, err
	}
	return &txn{tx: tx, d: c.d}, nil
}

func (c *conn) Close() error { return c.db.Close() }

// txn is a transaction of a conn (rebinding as well).
type txn struct {
	tx *sql.Tx
	d  dialect
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.d.rebind(q), args...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.d.rebind(q), args...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.d.rebind(q), args...)
}

func (t *txn) Commit() error   { return t.tx.Commit() }
func (t *txn) Rollback() error { return t.tx.Rollback() }

// querier is what the read helpers query through: a conn or a txn.
type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (sqliteDialect) lockRowsOf(string) string { return "" }

// NO KEY UPDATE conflicts with itself, not with foreign key checks.
func (postgresDialect) lockRowsOf(alias string) string { return " FOR NO KEY UPDATE OF " + alias }
