// Package pgtest runs a throwaway PostgreSQL server for tests: initdb and
// pg_ctl from Debian's postgresql package (/usr/lib/postgresql/*/bin), run
// as the postgres OS user (PostgreSQL refuses root) in a temporary
// directory, on a random free port with fsync off, its unix socket in that
// directory. The server is stopped and removed when the test ends.
//
// When the binaries are missing (or the postgres user is), a test skips
// loudly, except under CI=true where it fails: CI must never pass by
// skipping. `scripts/install-deps.sh` installs them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// Server is one running throwaway PostgreSQL server.
type Server struct {
	// Dir holds the data directory and the unix socket.
	Dir  string
	Port int
	bin  string
	// cred runs the binaries as the postgres user (nil: as ourselves).
	cred *syscall.Credential
}

// startTimeout bounds initdb plus pg_ctl start.
const startTimeout = 60 * time.Second

// BinDir returns the newest /usr/lib/postgresql/<v>/bin holding initdb and
// pg_ctl, or "" when there is none.
func BinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if sandboxtest.Executable(filepath.Join(d, "initdb")) && sandboxtest.Executable(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// errUnavailable: PostgreSQL cannot run here (binaries or user missing).
type errUnavailable struct{ why string }

func (e errUnavailable) Error() string {
	return "pgtest: PostgreSQL unavailable (" + e.why + "); install it with scripts/install-deps.sh"
}

// fatal skips t loudly when err is errUnavailable (fails it under
// CI=true), and fails it otherwise.
func fatal(t testing.TB, err error) {
	t.Helper()
	var ue errUnavailable
	if !errors.As(err, &ue) {
		t.Fatal(err)
	}
	sandboxtest.Unavailable(t, err.Error())
}

// Start runs a new server for t (stopped and removed at cleanup).
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		fatal(t, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// start runs a new server; Stop stops and removes it.
func start() (_ *Server, err error) {
	bin := BinDir()
	if bin == "" {
		return nil, errUnavailable{"no initdb/pg_ctl under /usr/lib/postgresql/*/bin"}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errUnavailable{"no postgres OS user to run the server as (root may not)"}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin, cred: cred}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	data := filepath.Join(dir, "data")
	if out, err := s.run(ctx, "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale", "C"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	// A port that was free a moment ago; a lost race fails pg_ctl start,
	// which is retried on another port.
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-c port=%d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off "+
			"-c synchronous_commit=off -c full_page_writes=off -c max_connections=300", s.Port, dir)
		out, err := s.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "50", "start")
		if err == nil {
			return s, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := s.run(ctx, "pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "immediate", "-w", "-t", "50", "stop")
	os.RemoveAll(s.Dir)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN is the postgres:// URL of database dbname on s (over TCP on
// 127.0.0.1, user postgres, trust authentication).
func (s *Server) DSN(dbname string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path: "/" + dbname, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates a fresh, empty database on s and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.DSN(name)
}

// shared is the server of this test binary (see NewDatabase, Main).
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// NewDatabase creates a fresh database on a server shared by the calling
// test binary's tests, started on first use, and returns its DSN. Call
// Main from TestMain so the server is stopped when the tests end. Prefer
// this over Start in suites with many tests (initdb costs about a second).
func NewDatabase(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = start() })
	if shared.err != nil {
		fatal(t, shared.err)
	}
	return shared.srv.NewDatabase(t)
}

// Main runs m and then stops the shared server (if one was started); use
// it as `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }`.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
