package sessiontest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where the PostgreSQL 15 server binaries are looked for (Debian package
// postgresql-15; `make test-deps` installs it).
const BinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running private PostgreSQL cluster listening on 127.0.0.1.
type Cluster struct {
	Dir      string // temporary directory: data/, the unix socket, the password file
	Host     string // always 127.0.0.1
	Port     int
	User     string // superuser, "postgres"
	Password string // superuser password (scram-sha-256 over TCP)

	cmd  *exec.Cmd     // the postmaster; owned by Start and Stop
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd's exit status; written before done is closed
}

// URL returns a connection URL for the superuser and database db.
func (c *Cluster) URL(db string) string {
	return c.URLFor(c.User, c.Password, db)
}

// URLFor returns a connection URL for role user with password to database db.
func (c *Cluster) URLFor(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// credential returns the SysProcAttr that runs PostgreSQL binaries as the postgres
// OS user when the test runs as root (initdb and postgres refuse to run as root),
// and the uid/gid files must belong to; nil, -1, -1 for an ordinary user.
func credential() (*syscall.SysProcAttr, int, int, error) {
	if os.Geteuid() != 0 {
		return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sessiontest: running as root needs the postgres OS user (package postgresql-15): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		// The postmaster dies with the test binary even when Stop never runs.
		Pdeathsig: syscall.SIGKILL,
	}, uid, gid, nil
}

// Start initialises and starts a new cluster in a fresh temporary directory. Stop
// it with Stop, which also removes the directory.
func Start(ctx context.Context) (*Cluster, error) {
	initdb := filepath.Join(BinDir, "initdb")
	postgres := filepath.Join(BinDir, "postgres")
	for _, b := range []string{initdb, postgres} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("sessiontest: %s is missing: install the Debian package postgresql-15 (make test-deps does): %w", b, err)
		}
	}
	attr, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mtrelay-pg-")
	if err != nil {
		return nil, fmt.Errorf("sessiontest: %w", err)
	}
	c := &Cluster{Dir: dir, Host: "127.0.0.1", User: "postgres", Password: randomHex(16)}
	fail := func(err error) (*Cluster, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return fail(fmt.Errorf("sessiontest: %w", err))
	}
	if uid >= 0 {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fail(fmt.Errorf("sessiontest: chown %s to postgres: %w", p, err))
			}
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-U", c.User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = dir
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("sessiontest: initdb: %w\n%s", err, out))
	}
	// scram-sha-256 for every TCP connection; trust on the private unix socket only.
	hba := "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fail(fmt.Errorf("sessiontest: %w", err))
	}
	if uid >= 0 {
		os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)
	}

	// A free port can be taken between probing and listening: retry a few times.
	for attempt := 0; ; attempt++ {
		c.Port, err = freePort()
		if err == nil {
			err = c.startPostmaster(ctx, postgres, data, attr)
		}
		if err == nil {
			return c, nil
		}
		if attempt == 4 || ctx.Err() != nil {
			return fail(err)
		}
	}
}

func (c *Cluster) startPostmaster(ctx context.Context, postgres, data string, attr *syscall.SysProcAttr) error {
	// Durability is pointless for a throwaway cluster; fsync=off keeps it fast.
	cmd := exec.Command(postgres, "-D", data, "-k", c.Dir, "-h", c.Host, "-p", strconv.Itoa(c.Port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=400", "-c", "shared_buffers=32MB", "-c", "logging_collector=off",
		"-c", "log_min_messages=warning")
	cmd.Dir = c.Dir
	cmd.SysProcAttr = attr
	logf, err := os.Create(filepath.Join(c.Dir, "postgres.log"))
	if err != nil {
		return fmt.Errorf("sessiontest: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("sessiontest: start postgres: %w", err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() { // waited for by Stop through c.done
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.done:
			log, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
			return fmt.Errorf("sessiontest: postgres exited (%v):\n%s", c.err, log)
		case <-ctx.Done():
			c.stopPostmaster()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stopPostmaster()
			return fmt.Errorf("sessiontest: postgres not ready after 60s: %w", err)
		}
	}
}

// stopPostmaster asks for a fast shutdown (SIGINT), then kills after 10 s.
func (c *Cluster) stopPostmaster() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Stop shuts the cluster down and removes its directory.
func (c *Cluster) Stop() {
	c.stopPostmaster()
	os.RemoveAll(c.Dir)
}

// Log returns what the postmaster wrote so far (warnings and errors).
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
	return string(b)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("sessiontest: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	sharedOnce sync.Once
	shared     *Cluster // set by sharedOnce; stopped by Main
	sharedErr  error
)

// Shared returns the test binary's cluster, starting it on first use. Test packages
// that use it call Main from TestMain so that it is stopped and removed at the end.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, sharedErr = Start(ctx)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// Main runs the tests and then stops the shared cluster, if one was started:
//
//	func TestMain(m *testing.M) { os.Exit(sessiontest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// DB is a fresh database in the shared cluster, dropped when its test ends.
type DB struct {
	Cluster *Cluster
	Name    string
	URL     string // superuser URL for this database
	Prefix  string // unique prefix for role names made by this test (roles are cluster-wide)

	track func(role string) // remembers a role to drop at cleanup; immutable
}

var (
	dbSeq   atomic.Int64
	setupMu sync.Mutex // serializes setup: roles and grants are cluster-wide catalogs
)

// NewDatabase creates a database for t in the shared cluster and, when setup is not
// nil, runs setup(ctx, superuserURL) on it (e.g. the migration). Setups run one at a
// time in the whole test binary, since concurrent CREATE ROLE or GRANT on the same
// cluster-wide roles fail with "tuple concurrently updated".
func NewDatabase(t testing.TB, setup func(ctx context.Context, url string) error) *DB {
	t.Helper()
	c := Shared(t)
	n := dbSeq.Add(1)
	db := &DB{Cluster: c, Name: fmt.Sprintf("t%d_%s", n, randomHex(3)), Prefix: fmt.Sprintf("t%d_", n)}
	db.URL = c.URL(db.Name)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("sessiontest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db.Name); err != nil {
		t.Fatalf("sessiontest: create database: %v", err)
	}
	var roles []string
	var rolesMu sync.Mutex
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Errorf("sessiontest: cleanup connect: %v", err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db.Name+" WITH (FORCE)"); err != nil {
			t.Errorf("sessiontest: drop database: %v", err)
		}
		rolesMu.Lock()
		defer rolesMu.Unlock()
		for _, r := range roles {
			if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize()); err != nil {
				t.Errorf("sessiontest: drop role %s: %v", r, err)
			}
		}
	})
	db.track = func(r string) {
		rolesMu.Lock()
		roles = append(roles, r)
		rolesMu.Unlock()
	}
	if setup != nil {
		setupMu.Lock()
		err := setup(ctx, db.URL)
		setupMu.Unlock()
		if err != nil {
			t.Fatalf("sessiontest: setup: %v", err)
		}
	}
	return db
}

// CreateRole creates a LOGIN role named db.Prefix+name with password, member of
// groups (e.g. "mtrelay_user"), dropped when the test ends, and returns its name.
func (db *DB) CreateRole(t testing.TB, name, password string, groups ...string) string {
	t.Helper()
	role := db.Prefix + name
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatalf("sessiontest: connect: %v", err)
	}
	defer conn.Close(ctx)
	q := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), strings.ReplaceAll(password, "'", "''"))
	if len(groups) > 0 {
		ids := make([]string, len(groups))
		for i, g := range groups {
			ids[i] = pgx.Identifier{g}.Sanitize()
		}
		q += " IN ROLE " + strings.Join(ids, ", ")
	}
	setupMu.Lock()
	_, err = conn.Exec(ctx, q)
	setupMu.Unlock()
	if err != nil {
		t.Fatalf("sessiontest: create role %s: %v", role, err)
	}
	db.track(role)
	return role
}

// Backends returns how many server backends role usename has open in any database.
func (db *DB) Backends(t testing.TB, usename string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.Cluster.URL("postgres"))
	if err != nil {
		t.Fatalf("sessiontest: connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", usename).Scan(&n); err != nil {
		t.Fatalf("sessiontest: pg_stat_activity: %v", err)
	}
	return n
}
