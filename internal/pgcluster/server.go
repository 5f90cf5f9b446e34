// Package pgcluster runs local PostgreSQL clusters from the installed
// server binaries and builds shard databases on them: initdb, start and stop
// (as the postgres OS user when running as root, since the server refuses
// root), halting and freezing a server as a failing host would, and creating
// and migrating a configuration's shard databases.
//
// It is shared by the dev commands (cmd/dmsdev: demo, ingest) and by the test
// harness pgtest, and imports no `testing`: a command that uses it links no
// test code. It may import migrations, regions and shardmap; nothing shipped
// imports it (cmd/dmsrouter's deps test checks that).
//
// Start reuses the server PGTEST_DSN (a superuser DSN, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) or any of
// PGHOST/PGPORT name; otherwise it runs initdb in a temporary directory and
// starts a server on a free loopback port.
package pgcluster

import (
	"context"
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
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server to create databases on: one this process
// started, or one it reuses.
type Server struct {
	// AdminDSN connects as a superuser to the server's postgres database.
	AdminDSN string
	// Host and Port locate the server.
	Host string
	Port int

	dir   string   // data directory when this process started the server
	bin   string   // directory of pg_ctl, initdb and postgres
	owner string   // OS user that owns dir, "" for the current user
	temp  bool     // dir is a temporary directory that Stop removes
	extra []string // settings given to StartTempWith, after the defaults
}

// Start returns the server named by PGTEST_DSN or the PG* variables in
// getenv, or starts a throwaway one. Stop it when done: Stop is a no-op for a
// server this process did not start.
func Start(ctx context.Context, getenv func(string) string) (*Server, error) {
	if dsn := getenv("PGTEST_DSN"); dsn != "" {
		return reuse(ctx, dsn)
	}
	if getenv("PGHOST") != "" || getenv("PGPORT") != "" {
		return reuse(ctx, "postgres:///postgres?sslmode=disable")
	}
	return StartTemp(ctx)
}

func reuse(ctx context.Context, dsn string) (*Server, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: parse PGTEST_DSN: %w", err)
	}
	s := &Server{AdminDSN: dsn, Host: cfg.Host, Port: int(cfg.Port)}
	if err := s.ping(ctx, 10*time.Second); err != nil {
		return nil, fmt.Errorf("pgcluster: server %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return s, nil
}

// BinDir finds the directory holding initdb, pg_ctl and postgres: PG_BINDIR
// if set, then the newest /usr/lib/postgresql/*/bin, then $PATH.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries not found (install them: apt-get install postgresql)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Installed reports whether PostgreSQL's server binaries (initdb, pg_ctl and
// postgres) are in BinDir.
func Installed() bool {
	bin, err := BinDir()
	if err != nil {
		return false
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return false
		}
	}
	return true
}

// StartTemp starts a throwaway cluster in a new temporary directory on a
// free loopback port; Stop stops it and removes the directory.
func StartTemp(ctx context.Context) (*Server, error) { return StartTempWith(ctx) }

// StartTempWith is StartTemp with server settings ("name=value") that
// override the defaults, such as "wal_level=replica" for a server an
// online move must refuse. Resume starts it again with them.
func StartTempWith(ctx context.Context, settings ...string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	dir, err := os.MkdirTemp("", "dmsrouter-pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	s := &Server{Host: "127.0.0.1", dir: dir, bin: bin, temp: true, extra: settings}
	if os.Geteuid() == 0 {
		// The server refuses to run as root.
		s.owner = "postgres"
		if err := chownTo(dir, s.owner); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
	}
	if err := s.initAndStart(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartAt starts (initialising it on first use) a cluster whose data lives in
// dir, listening on 127.0.0.1:port. It is how the demo keeps its data between
// runs; Stop leaves dir in place for such a server.
func StartAt(ctx context.Context, dir string, port int) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", Port: port, dir: abs, bin: bin}
	if os.Geteuid() == 0 {
		s.owner = "postgres"
		if err := chownTo(abs, s.owner); err != nil {
			return nil, err
		}
	}
	if err := s.initAndStart(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// StartReplica makes a streaming replica of s: pg_basebackup -R copies
// s's data, over a replication connection as its admin, into a new
// temporary directory, and the copy starts as a hot standby, with s's
// settings, on a free loopback port, replaying s's WAL as it comes. Stop
// it before s. Its databases are s's: DSN on it names the same ones.
func (s *Server) StartReplica(ctx context.Context) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	dir, err := os.MkdirTemp("", "dmsrouter-pgcluster-replica-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	r := &Server{Host: "127.0.0.1", dir: dir, bin: bin, temp: true, extra: s.extra}
	if os.Geteuid() == 0 {
		r.owner = "postgres"
		if err := chownTo(dir, r.owner); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
	}
	host := s.Host
	if host == "" {
		host = "127.0.0.1"
	}
	out, err := r.pg(ctx, "pg_basebackup", "-D", filepath.Join(dir, "data"), "-R", "-X", "stream", "-c", "fast",
		"-h", host, "-p", strconv.Itoa(s.Port), "-U", adminUser(s.AdminDSN)).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgcluster: pg_basebackup: %w\n%s", err, out)
	}
	if err := r.initAndStart(ctx); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// Moved returns dsn with its host and port replaced by s's: the same
// database and user on s, such as a primary's database on its replica.
func (s *Server) Moved(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	u.Host = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	return u.String(), nil
}

func (s *Server) initAndStart(ctx context.Context) error {
	data := filepath.Join(s.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if out, err := s.pg(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust",
			"--encoding=UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
			return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
		}
	}
	if s.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		s.Port = port
	}
	opts := []string{
		"-c listen_addresses=127.0.0.1",
		"-c port=" + strconv.Itoa(s.Port),
		"-c unix_socket_directories=" + s.dir,
		"-c max_connections=400",
		"-c shared_buffers=256MB",
		"-c fsync=off",
		"-c synchronous_commit=off",
		"-c full_page_writes=off",
		"-c max_locks_per_transaction=256",
		"-c timezone=UTC",
		// An online region move (package move) copies a region with
		// logical replication: a slot and a WAL sender per move and
		// direction, and one per table while the copy synchronises.
		"-c wal_level=logical",
		"-c max_replication_slots=32",
		"-c max_wal_senders=32",
	}
	for _, set := range s.extra {
		// The last -c of a setting wins.
		opts = append(opts, "-c "+set)
	}
	logFile := s.LogFile()
	if out, err := s.pg(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", logFile, "-o", strings.Join(opts, " ")).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("pgcluster: pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	s.AdminDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return s.ping(ctx, 30*time.Second)
}

// pg returns a command running the named server binary as the data
// directory's owner.
func (s *Server) pg(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.owner != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", s.owner, "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

// LogFile returns the path of the server's log (its stderr) when this
// process started it, else "".
func (s *Server) LogFile() string {
	if s.dir == "" {
		return ""
	}
	return filepath.Join(s.dir, "postgres.log")
}

// Stop stops a server this process started and removes its temporary data
// directory (not a directory given to StartAt). It is a no-op otherwise.
func (s *Server) Stop() error {
	if s.dir == "" {
		return nil
	}
	data := filepath.Join(s.dir, "data")
	var err error
	if _, statErr := os.Stat(filepath.Join(data, "postmaster.pid")); statErr == nil {
		if out, e := s.pg(context.Background(), "pg_ctl", "stop", "-m", "fast", "-w", "-D", data).CombinedOutput(); e != nil {
			err = fmt.Errorf("pgcluster: pg_ctl stop: %w\n%s", e, out)
		}
	}
	if s.temp {
		os.RemoveAll(s.dir)
	}
	return err
}

// Halt stops a server this process started but keeps its data, so Resume
// can start it again: the way tests take a shard down and bring it back.
// It stops the server as a crash would (immediate shutdown) after a
// checkpoint: the clusters run with synchronous_commit and fsync off, so
// without it the last commits (a test's fixtures, a region's fence row)
// could be lost with the WAL buffers, which a production server, which
// flushes its commits, would not lose.
func (s *Server) Halt() error {
	if s.dir == "" {
		return errors.New("pgcluster: cannot halt a server this process did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Exec(ctx, "CHECKPOINT") // best effort: a paused or sick server is halted all the same
	out, err := s.pg(context.Background(), "pg_ctl", "stop", "-m", "immediate", "-w", "-D", filepath.Join(s.dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Resume starts a halted server again on the same port.
func (s *Server) Resume(ctx context.Context) error {
	if s.dir == "" {
		return errors.New("pgcluster: cannot resume a server this process did not start")
	}
	return s.initAndStart(ctx)
}

// Pause freezes a server this process started, as a hung host would: it
// sends SIGSTOP to the postmaster and then to every process it has forked,
// so connections stay open and queries hang until Continue. Connecting
// still succeeds at the TCP level (the kernel accepts), but nothing answers.
func (s *Server) Pause() error { return s.signalAll(syscall.SIGSTOP) }

// Continue resumes a server that Pause froze. It is harmless on a server
// that is not paused.
func (s *Server) Continue() error { return s.signalAll(syscall.SIGCONT) }

// signalAll sends sig to the postmaster of the data directory first, then to
// its children (backends and auxiliary processes), found through /proc. A
// stopped postmaster forks nothing new, so none is missed.
func (s *Server) signalAll(sig syscall.Signal) error {
	if s.dir == "" {
		return errors.New("pgcluster: cannot signal a server this process did not start")
	}
	pidFile, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("pgcluster: read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pm <= 0 {
		return fmt.Errorf("pgcluster: postmaster.pid holds no pid: %q", first)
	}
	if err := syscall.Kill(pm, sig); err != nil {
		return fmt.Errorf("pgcluster: signal postmaster %d: %w", pm, err)
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if st, err := ProcessStat(pid); err != nil || st.PPID != pm {
			continue // another process, or gone
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgcluster: signal backend %d: %w", pid, err)
		}
	}
	return nil
}

// DSN returns a DSN for database db as user on this server.
func (s *Server) DSN(db, user string) string {
	u, _ := url.Parse(s.AdminDSN)
	u.User = url.User(user)
	if pw, ok := userPassword(s.AdminDSN); ok && user == adminUser(s.AdminDSN) {
		u.User = url.UserPassword(user, pw)
	}
	u.Path = "/" + db
	return u.String()
}

// AdminDB returns a DSN for database db as the admin user.
func (s *Server) AdminDB(db string) string { return s.DSN(db, adminUser(s.AdminDSN)) }

func adminUser(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil || cfg.User == "" {
		return "postgres"
	}
	return cfg.User
}

func userPassword(dsn string) (string, bool) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil || cfg.Password == "" {
		return "", false
	}
	return cfg.Password, true
}

// Exec runs sql on the server's postgres database as the admin.
func (s *Server) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.AdminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func (s *Server) ping(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := pgx.Connect(ctx, s.AdminDSN)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("look up OS user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}
