package session_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
)

// counter is a handler's per-session state in the tests.
var counter = session.NewValue[int]("test counter")

// mountCounter adds GET /count to mux: it increments the session's counter (starting
// an anonymous session when there is none) and answers the new value, or 503 at the
// anonymous cap.
func mountCounter(mux *http.ServeMux, st *session.Store) {
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		n, _ := counter.Get(st, r)
		if err := counter.Set(st, w, r, n+1); err != nil {
			if !errors.Is(err, session.ErrTooManySessions) {
				panic(err)
			}
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, strconv.Itoa(n+1))
	})
}

func (c *client) count() (int, int) {
	c.t.Helper()
	code, b := c.do("GET", "/count", nil)
	n, _ := strconv.Atoi(string(b))
	return code, n
}

// TestValueAnonymous: a Value set on a request without a session starts an
// anonymous session (a cookie, no database connection, not logged in for the API),
// which keeps its state across requests, counts in Stats, is capped by MaxAnonymous
// and ends at logout; no database needed.
func TestValueAnonymous(t *testing.T) {
	t.Parallel()
	st, err := session.New(session.Config{Limits: session.Limits{MaxAnonymous: 2}}, zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	mux := http.NewServeMux()
	st.Mount(mux)
	mountCounter(mux, st)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{store: st, srv: srv}

	a, b, c := e.client(t), e.client(t), e.client(t)
	for i := 1; i <= 3; i++ {
		if code, n := a.count(); code != 200 || n != i {
			t.Fatalf("count %d: %d %d", i, code, n)
		}
	}
	if a.cookie() == "" {
		t.Fatal("no session cookie for the anonymous session")
	}
	if code, n := b.count(); code != 200 || n != 1 {
		t.Fatalf("another browser's count: %d %d, want its own 1", code, n)
	}
	if s := st.Stats(); s.Anonymous != 2 || s.Sessions != 0 {
		t.Fatalf("stats %+v, want 2 anonymous sessions and no logged-in one", s)
	}
	if code, _ := c.count(); code != http.StatusServiceUnavailable {
		t.Fatalf("3rd anonymous session at MaxAnonymous 2: %d, want 503", code)
	}
	// Anonymous is not logged in.
	for _, p := range []string{"/api/session", "/api/keys", "/api/live"} {
		if code, _ := a.do("GET", p, nil); code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d, want 401", p, code)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: session.CookieName, Value: a.cookie()})
	if who := st.Caller(req); who.Session {
		t.Fatalf("Caller of an anonymous session: %+v, want no session", who)
	}
	if code, _ := a.do("POST", "/api/logout", nil); code != http.StatusNoContent {
		t.Fatalf("logout of an anonymous session: %d", code)
	}
	if s := st.Stats(); s.Anonymous != 1 {
		t.Fatalf("stats %+v after logout, want 1 anonymous session", s)
	}
	if code, n := c.count(); code != 200 || n != 1 {
		t.Fatalf("anonymous session after one ended: %d %d", code, n)
	}
}

// TestValueSurvivesLogin: state set before logging in stays with the browser after
// login, under the new session id; the anonymous session is gone.
func TestValueSurvivesLogin(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u := db.CreateRole(t, "val", "pw", "mtrelay_user")
	mux := http.NewServeMux()
	e.store.Mount(mux)
	mountCounter(mux, e.store)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e2 := &env{store: e.store, srv: srv}
	c := e2.client(t)
	c.count()
	c.count()
	before := c.cookie()
	if code := c.login(u, "pw"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	if c.cookie() == before {
		t.Fatal("session id unchanged at login")
	}
	if code, n := c.count(); code != 200 || n != 3 {
		t.Fatalf("count after login: %d %d, want 3 (state kept)", code, n)
	}
	if s := e.store.Stats(); s.Sessions != 1 || s.Anonymous != 0 || s.LoginsOK != 1 {
		t.Fatalf("stats %+v, want 1 logged-in session, no anonymous one, 1 login", s)
	}
}

// TestStats: the login and database-error counters.
func TestStats(t *testing.T) {
	t.Parallel()
	t.Run("database", func(t *testing.T) {
		t.Parallel()
		db := migrated(t)
		e := newEnv(t, db, func(c *session.Config) { c.LoginFailuresPerUser = 2; c.LoginWindow = time.Hour })
		u := db.CreateRole(t, "stat", "pw", "mtrelay_user")
		c := e.client(t)
		c.login(u, "pw")
		c.login(u, "bad")
		c.login(u, "bad")
		c.login(u, "bad") // limited
		if s := e.store.Stats(); s.LoginsOK != 1 || s.LoginsFailed != 2 || s.LoginsLimited != 1 ||
			s.LoginsUnavailable != 0 || s.DatabaseErrors != 0 || s.Sessions != 1 {
			t.Fatalf("stats %+v: want 1 ok, 2 failed, 1 limited, no errors, 1 session", s)
		}
		// A permission error is the user's, not the database's.
		if code, _ := c.do("POST", "/api/keys", map[string]string{"app": "live", "stream": "x"}); code != 201 {
			t.Fatalf("create key: %d", code)
		}
		if code, _ := c.do("POST", "/api/keys", map[string]string{"app": "live", "stream": "x/y"}); code != 400 {
			t.Fatalf("bad key: %d", code)
		}
		if s := e.store.Stats(); s.DatabaseErrors != 0 {
			t.Fatalf("stats %+v: a refused request counted as a database error", s)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		st, mux := unreachableStore(t)
		if rec := newRecorder(mux, "POST", "/api/login", `{"username":"u","password":"p"}`); rec.Code != 503 {
			t.Fatalf("login: %d", rec.Code)
		}
		d, _ := st.Authorize(t.Context(), relay.AccessRequest{Action: relay.ActionPublish, Key: "live/x", Query: "key=k"})
		if d.Allow {
			t.Fatal("publish allowed with the database down")
		}
		if _, err := st.RecordingStarted(t.Context(), session.RecordingInfo{App: "live", Stream: "x", Path: "live/x.flv"}); err == nil {
			t.Fatal("RecordingStarted succeeded with the database down")
		}
		if s := st.Stats(); s.LoginsUnavailable != 1 || s.DatabaseErrors != 3 {
			t.Fatalf("stats %+v: want 1 unavailable login and 3 database errors", s)
		}
	})
}
