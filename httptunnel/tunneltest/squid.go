package tunneltest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// squidStartTimeout bounds how long StartSquid waits for squid to listen.
const squidStartTimeout = 20 * time.Second

// squidStopGrace is how long Stop waits after SIGTERM before killing squid.
// With shutdown_lifetime 0 squid still takes about 2 s to exit.
const squidStopGrace = 5 * time.Second

// Squid is a private squid instance listening on 127.0.0.1. It lets clients
// on localhost reach any port on 127.0.0.0/8, by plain HTTP or CONNECT, and
// denies everything else, so tests cannot leak onto the network. It caches
// nothing.
type Squid struct {
	addr      string // immutable: "127.0.0.1:PORT"
	dir       string // immutable: config, logs and pid file
	service   string // immutable: squid -n name; also names its /dev/shm segments
	cmd       *exec.Cmd
	stderr    *squidOutput
	done      chan struct{} // closed by the wait goroutine
	stopOnce  sync.Once
	accessLog string // immutable: path of the access log
}

// StartSquid starts squid on a free loopback port and waits until it accepts
// connections. It fails the test, never skips, if squid is not installed:
// `make test` installs the Debian package squid. Squid is stopped and its
// files removed when the test ends; its output is logged if the test failed.
func StartSquid(t testing.TB) *Squid {
	t.Helper()
	bin := requireSquid(t)
	var lastErr error
	// The free port can be taken between FreeAddr and squid's bind by a
	// parallel test; retry on a new port in that case.
	for range 3 {
		s, err := startSquid(t, bin)
		if err == nil {
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	t.Fatalf("tunneltest: start squid: %v", lastErr)
	return nil
}

func startSquid(t testing.TB, bin string) (*Squid, error) {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: squid started as root drops to the "proxy" user, which
	// cannot enter t.TempDir's 0700 root-owned parent. A directory in
	// os.TempDir owned by that user works for root and non-root alike.
	dir, err := os.MkdirTemp("", "tunneltest-squid-")
	if err != nil {
		return nil, err
	}
	s := &Squid{
		addr:      addr,
		dir:       dir,
		service:   "mtrelaytest" + randomHex(6),
		stderr:    &squidOutput{},
		done:      make(chan struct{}),
		accessLog: filepath.Join(dir, "access.log"),
	}
	cleanupDir := func() {
		_ = os.RemoveAll(dir)
		s.removeShm()
	}
	effectiveUser := ""
	if os.Geteuid() == 0 {
		effectiveUser, err = chownToSquidUser(dir)
		if err != nil {
			cleanupDir()
			return nil, err
		}
	}
	conf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(conf, []byte(squidConfig(addr, dir, effectiveUser)), 0o644); err != nil {
		cleanupDir()
		return nil, err
	}

	// -N: no daemon and no worker kids, so this process is squid itself.
	// -n: a unique service name. Squid 5 names its shared-memory segments
	// /dev/shm/<service>-cf__*.shm; with the default name, a second instance
	// (a parallel test) fails with "shm_open ... File exists".
	// -d 1: copy cache.log messages to stderr, which we watch for readiness.
	cmd := exec.CommandContext(t.Context(), bin, "-N", "-n", s.service, "-f", conf, "-d", "1")
	// If the test's context ends first, shut down as Stop does.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = squidStopGrace
	cmd.Dir = dir
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		cleanupDir()
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	s.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	// Wait for the log line rather than dialing the port: a probe
	// connection would show up in the access log as an aborted transaction.
	deadline := time.NewTimer(squidStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(s.stderr.String(), "Accepting HTTP Socket connections") {
		select {
		case <-s.done:
			out := s.stderr.String()
			cleanupDir()
			return nil, fmt.Errorf("squid exited during start-up:\n%s", out)
		case <-deadline.C:
			s.Stop()
			out := s.stderr.String()
			cleanupDir()
			return nil, fmt.Errorf("squid not listening on %s after %v:\n%s", addr, squidStartTimeout, out)
		case <-tick.C:
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("squid on %s, output:\n%s\n--- access.log ---\n%s", s.addr, s.stderr.String(), s.AccessLog())
		}
		cleanupDir()
	})
	return s, nil
}

// squidConfig returns a minimal squid.conf. Notes on the choices:
//   - http_access: only localhost clients, only loopback destinations, any
//     port and any method including CONNECT. The Debian default's
//     Safe_ports/SSL_ports rules and its "deny to_localhost" are left out.
//   - cache deny all: every request goes to the origin, as for live media.
//   - access_log stdio: + buffered_logs off: each line is written when the
//     transaction ends, so AccessLog sees it without a rotate or shutdown.
//     The default daemon: module buffers in a helper process.
//   - pid file, logs and coredump_dir live in dir; no disk cache, no netdb
//     file, no pinger helper, nothing under /var.
//   - dns_nameservers 127.0.0.1: squid never queries the real resolver;
//     IP literals and /etc/hosts names need no DNS.
//   - shutdown_lifetime 0: do not wait 30 s for clients on shutdown.
func squidConfig(addr, dir, effectiveUser string) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# generated by tunneltest.StartSquid")
	line("http_port %s", addr)
	line("visible_hostname localhost")
	if effectiveUser != "" {
		// Squid refuses to run as root ("Don't run Squid as root, set
		// 'cache_effective_user'!"), even with cache_effective_user root.
		line("cache_effective_user %s", effectiveUser)
	}
	line("acl loopback_dst dst 127.0.0.0/8")
	line("http_access allow localhost loopback_dst")
	line("http_access deny all")
	line("cache deny all")
	line("cache_mem 8 MB")
	line("memory_cache_shared off")
	line("access_log stdio:%s squid", filepath.Join(dir, "access.log"))
	line("buffered_logs off")
	line("cache_log %s", filepath.Join(dir, "cache.log"))
	line("cache_store_log none")
	line("pid_filename %s", filepath.Join(dir, "squid.pid"))
	line("coredump_dir %s", dir)
	line("netdb_filename none")
	line("pinger_enable off")
	line("dns_nameservers 127.0.0.1")
	line("shutdown_lifetime 0 seconds")
	return b.String()
}

// chownToSquidUser gives dir to the user squid switches to when started as
// root: "proxy" on Debian (squid -v shows --with-default-user=proxy), else
// "nobody". It returns that user's name.
func chownToSquidUser(dir string) (string, error) {
	var lastErr error
	for _, name := range []string{"proxy", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			lastErr = err
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			lastErr = fmt.Errorf("user %s: non-numeric uid/gid", name)
			continue
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("no user for squid to run as (tried proxy, nobody): %w", lastErr)
}

// Addr returns the proxy's "127.0.0.1:PORT".
func (s *Squid) Addr() string { return s.addr }

// URL returns the proxy URL, "http://127.0.0.1:PORT", for http.Transport's
// Proxy (via url.Parse and http.ProxyURL) or ffmpeg's http_proxy variable.
func (s *Squid) URL() string { return "http://" + s.addr }

// AccessLog returns the access log so far, one line per finished
// transaction in squid's native format:
//
//	time elapsed 127.0.0.1 TCP_MISS/200 bytes GET http://127.0.0.1:N/path - HIER_DIRECT/127.0.0.1 type
//	time elapsed 127.0.0.1 TCP_TUNNEL/200 bytes CONNECT 127.0.0.1:N - HIER_DIRECT/127.0.0.1 -
//
// A line appears when its transaction ends: for CONNECT and for kept-alive
// or streaming responses that is after the client closes, so use
// WaitAccessLog rather than reading right after a response.
func (s *Squid) AccessLog() string {
	b, err := os.ReadFile(s.accessLog)
	if err != nil {
		return ""
	}
	return string(b)
}

// WaitAccessLog waits up to 10 s for the access log to contain substr and
// returns the log; it fails the test if it does not.
func (s *Squid) WaitAccessLog(t testing.TB, substr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := s.AccessLog()
		if strings.Contains(log, substr) {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("squid access log has no %q after 10 s:\n%s", substr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output returns what squid has written to stdout and stderr (its cache.log
// messages at debug level 1).
func (s *Squid) Output() string { return s.stderr.String() }

// Stop shuts squid down (SIGTERM, then SIGKILL after 5 s) and waits for it
// to exit. It is safe to call more than once; the access log stays readable
// until the test's cleanup.
func (s *Squid) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(squidStopGrace)
		defer timer.Stop()
		select {
		case <-s.done:
		case <-timer.C:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		// A killed squid leaves its shared-memory segments behind.
		s.removeShm()
	})
}

// removeShm deletes this instance's /dev/shm segments, if any remain.
func (s *Squid) removeShm() {
	matches, _ := filepath.Glob(filepath.Join("/dev/shm", s.service+"-*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// requireSquid returns the squid binary's path, or fails the test.
func requireSquid(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("squid"); err == nil {
		return p
	}
	// /usr/sbin is not on a normal user's PATH.
	if p, err := exec.LookPath("/usr/sbin/squid"); err == nil {
		return p
	}
	t.Fatalf("squid not found: run `make test` (installs Debian package squid)")
	return ""
}

// freeAddr returns "127.0.0.1:PORT" for a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// squidOutput collects squid's output; the wait goroutine of exec writes it
// while StartSquid and tests read it.
type squidOutput struct {
	mu  sync.Mutex
	buf strings.Builder // guarded by mu
}

func (o *squidOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *squidOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
