package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Node is the member that served the response (X-Wt-Node).
func (r Response) Node() string { return r.Header.Get("X-Wt-Node") }

// client is every test request's: bounded, keep-alive.
var client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// Do sends one request (body JSON-encoded unless a string or nil).
func Do(method, url, tok string, body any, header ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}, err
}

// Get is Do("GET", ...).
func Get(url, tok string) (Response, error) { return Do("GET", url, tok, nil) }

// Must sends one request and fails the test on a transport error or a
// status other than want.
func Must(t testing.TB, want int, method, url, tok string, body any) Response {
	t.Helper()
	r, err := Do(method, url, tok, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, r.Status, want, r.Body)
	}
	return r
}

// pgConnect connects to dsn; the caller closes the connection.
func pgConnect(ctx context.Context, t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	return conn
}

// pgExec runs one statement on dsn and returns the rows it affected.
func pgExec(ctx context.Context, t testing.TB, dsn, sql string, args ...any) int64 {
	t.Helper()
	conn := pgConnect(ctx, t, dsn)
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("postgres: %s: %v", sql, err)
	}
	return tag.RowsAffected()
}

// pgQuery runs a query on dsn and scans each row with scan.
func pgQuery(ctx context.Context, t testing.TB, dsn, sql string, scan func(pgx.Rows) error, args ...any) {
	t.Helper()
	conn := pgConnect(ctx, t, dsn)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("postgres: %s: %v", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatalf("postgres: %s: %v", sql, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("postgres: %s: %v", sql, err)
	}
}
