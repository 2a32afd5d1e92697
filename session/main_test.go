package session_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
	"github.com/mtrelay/mtrelay/session/sessiontest"
)

func TestMain(m *testing.M) { os.Exit(sessiontest.Main(m)) }

// migrated returns a fresh, migrated database.
func migrated(t *testing.T) *sessiontest.DB {
	t.Helper()
	return sessiontest.NewDatabase(t, func(ctx context.Context, url string) error {
		_, err := session.Migrate(ctx, url)
		return err
	})
}

// env is a Store serving its API on an httptest server, with a service role.
type env struct {
	db    *sessiontest.DB
	store *session.Store
	hub   *relay.Hub
	srv   *httptest.Server
}

func newEnv(t *testing.T, db *sessiontest.DB, mutate ...func(*session.Config)) *env {
	t.Helper()
	svc := db.CreateRole(t, "svc"+itoa(envSeq.Add(1)), "svcpw", "mtrelay_service")
	cfg := session.Config{DatabaseURL: db.Cluster.URLFor(svc, "svcpw", db.Name)}
	for _, m := range mutate {
		m(&cfg)
	}
	hub, err := relay.New(relay.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := session.New(cfg, zerolog.New(zerolog.NewTestWriter(t)), hub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	st.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("Store.Close: %v", err)
		}
		hub.Close()
	})
	return &env{db: db, store: st, hub: hub, srv: srv}
}

// client is one browser: a cookie jar and the CSRF token of its session.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (e *env) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: e.srv.URL, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// do sends a request with a JSON body (nil for none) and the CSRF header when the
// client has a token; it returns the status and body.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// login logs in and keeps the CSRF token; it returns the status.
func (c *client) login(user, password string) int {
	c.t.Helper()
	code, b := c.do("POST", "/api/login", map[string]string{"username": user, "password": password})
	if code == http.StatusOK {
		var s struct{ CSRF string }
		json.Unmarshal(b, &s)
		c.csrf = s.CSRF
	}
	return code
}

func (c *client) cookie() string {
	for _, ck := range c.hc.Jar.Cookies(mustURL(c.base)) {
		if ck.Name == session.CookieName {
			return ck.Value
		}
	}
	return ""
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

type sessiontestDB = sessiontest.DB

var envSeq atomic.Int64

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// unreachableStore returns a Store whose database URL names a closed port on
// 127.0.0.1 (the database is down), closed when the test ends, and a mux with its
// handlers.
func unreachableStore(t *testing.T) (*session.Store, *http.ServeMux) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	st, err := session.New(session.Config{DatabaseURL: "postgres://svc:pw@" + addr + "/db?sslmode=disable", ConnectTimeout: 2 * time.Second},
		zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	mux := http.NewServeMux()
	st.Mount(mux)
	return st, mux
}

func newRecorder(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
