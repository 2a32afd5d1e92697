package httptunnel

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestMain fails the run if a Server goroutine outlives the tests
// (→ net/http/main_test.go).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			os.Stderr.WriteString("httptunnel: leaked goroutines:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for every goroutine started by a Server to end and
// returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "httptunnel.(*Server).") || strings.Contains(g, "httptunnel.(*tunnelConn).") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newServer returns a Server whose Close is checked at cleanup: it must return nil and
// leave no tunnel behind.
func newServer(t testing.TB, cfg Config, h ConnHandler) *Server {
	t.Helper()
	s, err := New(cfg, testLogger(t), h)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := s.Tunnels(); n != 0 {
			t.Errorf("Tunnels() after Close = %d, want 0", n)
		}
	})
	return s
}

func testLogger(t testing.TB) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

// echo is a ConnHandler that writes back what it reads.
func echo(ctx context.Context, c net.Conn) { io.Copy(c, c) } //nolint:errcheck

// recorder is a ConnHandler that echoes and keeps a copy of everything it read, and
// the error that ended its Read.
type recorder struct {
	mu      sync.Mutex
	in      bytes.Buffer
	readErr error
	conn    net.Conn
	ctx     context.Context
}

func (r *recorder) ServeConn(ctx context.Context, c net.Conn) {
	r.mu.Lock()
	r.conn, r.ctx = c, ctx
	r.mu.Unlock()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		r.mu.Lock()
		r.in.Write(buf[:n])
		if err != nil {
			r.readErr = err
		}
		r.mu.Unlock()
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (r *recorder) input() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.in.String()
}

func (r *recorder) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readErr
}

// do calls s.ServeHTTP directly (usable inside a synctest bubble).
func do(t testing.TB, s *Server, method, path, ctype string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

const fcs = "application/x-fcs"

// open opens a tunnel through ServeHTTP and returns its id.
func open(t testing.TB, s *Server) string {
	t.Helper()
	w := do(t, s, http.MethodPost, "/open/1", fcs, []byte{0})
	checkWire(t, w, false)
	id, ok := strings.CutSuffix(w.Body.String(), "\n")
	if !ok || len(id) != 32 || !validID(id) {
		t.Fatalf("open reply %q: want 32 hex characters and \\n", w.Body.String())
	}
	return id
}

// post does one tunnel request through ServeHTTP, checks the wire format of a 200
// reply and returns the body.
func post(t testing.TB, s *Server, path string, body []byte) []byte {
	t.Helper()
	w := do(t, s, http.MethodPost, path, fcs, body)
	checkWire(t, w, true)
	return w.Body.Bytes()
}

// checkWire checks a reply against rtmpt.md §3.2.
func checkWire(t testing.TB, w *httptest.ResponseRecorder, polled bool) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d %q, want 200", w.Code, w.Body.String())
	}
	h := w.Result().Header
	want := map[string]string{
		"Content-Type":   fcs,
		"Cache-Control":  "no-cache",
		"Connection":     "Keep-Alive",
		"Content-Length": strconv.Itoa(w.Body.Len()),
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if polled && w.Body.Len() == 0 {
		t.Fatal("empty send/idle reply: the polling byte is missing")
	}
}

func path(cmd command, id string, seq uint64) string {
	return string(appendPath(nil, cmd, id, seq))
}
