package session_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/session"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db, func(c *session.Config) { c.LoginFailuresPerUser = 3; c.LoginFailuresPerIP = 100 })
	alice := db.CreateRole(t, "alice", "alicepw", "mtrelay_user")
	db.CreateRole(t, "outsider", "outpw") // a login role outside mtrelay_user

	t.Run("ok", func(t *testing.T) {
		c := e.client(t)
		if code := c.login(alice, "alicepw"); code != http.StatusOK {
			t.Fatalf("login: %d", code)
		}
		code, b := c.do("GET", "/api/session", nil)
		var s struct {
			User  string
			CSRF  string
			Admin bool
		}
		json.Unmarshal(b, &s)
		if code != 200 || s.User != alice || s.CSRF != c.csrf || s.Admin {
			t.Fatalf("GET /api/session: %d %s", code, b)
		}
	})
	t.Run("wrong password and unknown user look the same", func(t *testing.T) {
		c := e.client(t)
		code1, b1 := c.do("POST", "/api/login", map[string]string{"username": alice, "password": "nope"})
		code2, b2 := c.do("POST", "/api/login", map[string]string{"username": db.Prefix + "nobody", "password": "nope"})
		code3, b3 := c.do("POST", "/api/login", map[string]string{"username": db.Prefix + "outsider", "password": "outpw"})
		if code1 != 401 || code2 != 401 || code3 != 401 || string(b1) != string(b2) || string(b1) != string(b3) {
			t.Fatalf("wrong password %d %s; unknown user %d %s; outsider %d %s", code1, b1, code2, b2, code3, b3)
		}
		if c.cookie() != "" {
			t.Fatal("failed login set a cookie")
		}
	})
	t.Run("form login", func(t *testing.T) {
		c := e.client(t)
		resp, err := c.hc.PostForm(e.srv.URL+"/api/login", map[string][]string{"username": {alice}, "password": {"alicepw"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("form login: %d", resp.StatusCode)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db, func(c *session.Config) {
		c.LoginFailuresPerUser = 3
		c.LoginFailuresPerIP = 100
		c.LoginWindow = time.Hour
	})
	bob := db.CreateRole(t, "bob", "bobpw", "mtrelay_user")
	c := e.client(t)
	for i := range 3 {
		if code := c.login(bob, "wrong"); code != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, code)
		}
	}
	if code := c.login(bob, "wrong"); code != http.StatusTooManyRequests {
		t.Fatalf("4th failure: %d, want 429", code)
	}
	// Even the right password waits for the window: the limit does not leak whether
	// the password was right.
	if code := c.login(bob, "bobpw"); code != http.StatusTooManyRequests {
		t.Fatalf("right password while limited: %d, want 429", code)
	}

	// Per IP: many user names from one address.
	e2 := newEnv(t, db, func(c *session.Config) {
		c.LoginFailuresPerUser = 100
		c.LoginFailuresPerIP = 2
		c.LoginWindow = time.Hour
	})
	c2 := e2.client(t)
	c2.login(db.Prefix+"x1", "a")
	c2.login(db.Prefix+"x2", "a")
	if code := c2.login(db.Prefix+"x3", "a"); code != http.StatusTooManyRequests {
		t.Fatalf("3rd failure from one IP: %d, want 429", code)
	}
}

func TestLoginDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	_, mux := unreachableStore(t)
	rec := newRecorder(mux, "POST", "/api/login", `{"username":"u","password":"p"}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("login with the database down: %d %s, want 503", rec.Code, rec.Body)
	}
}

func TestLoginsDisabledWithoutDatabase(t *testing.T) {
	t.Parallel()
	st, err := session.New(session.Config{}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	mux := http.NewServeMux()
	st.Mount(mux)
	rec := newRecorder(mux, "POST", "/api/login", `{"username":"u","password":"p"}`)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "logins disabled: no database configured") {
		t.Fatalf("login without database: %d %s", rec.Code, rec.Body)
	}
	if rec := newRecorder(mux, "GET", "/api/keys", ""); rec.Code != 401 {
		t.Fatalf("keys without database: %d, want 401", rec.Code)
	}
}

// TestBackendLifetime: the user's own backend is in pg_stat_activity after login
// and gone after logout, after idle expiry and after Close. PostgreSQL is a real
// process, so this waits on the real clock; the expiry rules themselves are checked
// on synctest's fake clock by TestExpirySynctest. While it waits for a backend to
// appear, the test keeps the session in use, so that a loaded machine cannot expire
// it first.
func TestBackendLifetime(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db, func(c *session.Config) { c.IdleTimeout = 2 * time.Second })
	carol := db.CreateRole(t, "carol", "carolpw", "mtrelay_user")
	waitBackends := func(want int, what string, keepAlive *client) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for db.Backends(t, carol) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d backends of %s, want %d", what, db.Backends(t, carol), carol, want)
			}
			if keepAlive != nil {
				if code, _ := keepAlive.do("GET", "/api/session", nil); code != 200 {
					t.Fatalf("%s: session ended while in use: %d", what, code)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := e.client(t)
	if code := c.login(carol, "carolpw"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	waitBackends(1, "after login", c)
	if code, _ := c.do("POST", "/api/logout", nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	waitBackends(0, "after logout", nil)
	if code, _ := c.do("GET", "/api/session", nil); code != 401 {
		t.Fatalf("session after logout: %d, want 401", code)
	}

	// Idle expiry: no request for longer than IdleTimeout.
	c2 := e.client(t)
	if code := c2.login(carol, "carolpw"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	waitBackends(1, "after 2nd login", c2)
	waitBackends(0, "after idle expiry", nil)
	if code, _ := c2.do("GET", "/api/session", nil); code != 401 {
		t.Fatalf("session after expiry: %d, want 401", code)
	}
}

func TestSessionIDChangesAtLoginAndCookie(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	dave := db.CreateRole(t, "dave", "davepw", "mtrelay_user")
	c := e.client(t)
	if c.login(dave, "davepw") != 200 {
		t.Fatal("login")
	}
	first := c.cookie()
	if len(first) < 43 { // 32 bytes, base64url
		t.Fatalf("cookie %q shorter than 256 bits", first)
	}
	if c.login(dave, "davepw") != 200 {
		t.Fatal("2nd login")
	}
	if second := c.cookie(); second == first || second == "" {
		t.Fatalf("session id did not change at login: %q → %q", first, second)
	}
	if e.store.Sessions() != 1 {
		t.Fatalf("%d sessions after re-login, want 1 (the old one ends)", e.store.Sessions())
	}
	// Cookie attributes.
	resp, err := http.Post(e.srv.URL+"/api/login", "application/json",
		strings.NewReader(`{"username":"`+dave+`","password":"davepw"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == session.CookieName {
			ck = x
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure over plain HTTP", ck)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	erin := db.CreateRole(t, "erin", "erinpw", "mtrelay_user")
	c := e.client(t)
	if c.login(erin, "erinpw") != 200 {
		t.Fatal("login")
	}
	token := c.csrf
	c.csrf = ""
	for _, call := range []struct{ method, path string }{
		{"POST", "/api/keys"}, {"DELETE", "/api/keys/1"}, {"POST", "/api/streams/live/x/kick"}, {"POST", "/api/logout"},
	} {
		if code, b := c.do(call.method, call.path, map[string]string{"app": "live", "stream": "x"}); code != http.StatusForbidden {
			t.Errorf("%s %s without X-CSRF-Token: %d %s, want 403", call.method, call.path, code, b)
		}
	}
	c.csrf = "wrong"
	if code, _ := c.do("POST", "/api/keys", map[string]string{"app": "live", "stream": "x"}); code != 403 {
		t.Errorf("wrong token: %d, want 403", code)
	}
	c.csrf = token
	if code, b := c.do("POST", "/api/keys", map[string]string{"app": "live", "stream": "x"}); code != 201 {
		t.Errorf("with token: %d %s, want 201", code, b)
	}
	if code, _ := c.do("GET", "/api/keys", nil); code != 200 {
		t.Errorf("GET needs no token: %d", code)
	}
}

func TestKeysRLS(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u1 := db.CreateRole(t, "u1", "pw1", "mtrelay_user")
	u2 := db.CreateRole(t, "u2", "pw2", "mtrelay_user")
	adm := db.CreateRole(t, "adm", "pwa", "mtrelay_admin")
	c1, c2, ca := e.client(t), e.client(t), e.client(t)
	for _, x := range []struct {
		c        *client
		u, pw    string
		wantAdmn bool
	}{{c1, u1, "pw1", false}, {c2, u2, "pw2", false}, {ca, adm, "pwa", true}} {
		if code := x.c.login(x.u, x.pw); code != 200 {
			t.Fatalf("login %s: %d", x.u, code)
		}
	}
	create := func(c *client, stream string) session.Key {
		code, b := c.do("POST", "/api/keys", map[string]string{"app": "live", "stream": stream})
		if code != 201 {
			t.Fatalf("create key: %d %s", code, b)
		}
		var k session.Key
		json.Unmarshal(b, &k)
		return k
	}
	list := func(c *client) []session.Key {
		code, b := c.do("GET", "/api/keys", nil)
		if code != 200 {
			t.Fatalf("list keys: %d %s", code, b)
		}
		var ks []session.Key
		json.Unmarshal(b, &ks)
		return ks
	}
	k1 := create(c1, "one")
	k2 := create(c2, "two")
	if k1.Owner != u1 || len(k1.Key) < 32 {
		t.Fatalf("key %+v: want owner %s and a long key", k1, u1)
	}
	if ks := list(c1); len(ks) != 1 || ks[0].ID != k1.ID {
		t.Fatalf("%s sees %+v, want only its key", u1, ks)
	}
	if ks := list(c2); len(ks) != 1 || ks[0].ID != k2.ID {
		t.Fatalf("%s sees %+v, want only its key", u2, ks)
	}
	if ks := list(ca); len(ks) != 2 {
		t.Fatalf("admin sees %d keys, want 2", len(ks))
	}
	if code, _ := c1.do("DELETE", "/api/keys/"+itoa(k2.ID), nil); code != 404 {
		t.Fatalf("%s deleting %s's key: %d, want 404", u1, u2, code)
	}
	if code, _ := c2.do("DELETE", "/api/keys/"+itoa(k2.ID), nil); code != 204 {
		t.Fatalf("owner deleting its key: %d, want 204", code)
	}
	if ks := list(ca); len(ks) != 1 {
		t.Fatalf("admin sees %d keys after revoke, want 1", len(ks))
	}
	// A user cannot forge the owner column even with SQL of their own.
	conn, err := pgx.Connect(t.Context(), db.Cluster.URLFor(u1, "pw1", db.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "INSERT INTO mtrelay.stream_keys (app, stream, key, owner) VALUES ('live','x','0123456789abcdef0123',$1)", u2); err == nil {
		t.Fatal("a user inserted a key owned by another user")
	}
}

// TestSlowQueryIsolation: a pg_sleep(5) in one session does not hold up another
// session's requests (each session has its own connection and its own lock).
func TestSlowQueryIsolation(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	slow := db.CreateRole(t, "slow", "pw", "mtrelay_user")
	fast := db.CreateRole(t, "fast", "pw", "mtrelay_user")
	cs, cf := e.client(t), e.client(t)
	if cs.login(slow, "pw") != 200 || cf.login(fast, "pw") != 200 {
		t.Fatal("login")
	}
	sleeping := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// Keep the slow session's own connection busy with pg_sleep(5), as a
		// console query of that user would.
		err := session.RunForTest(e.store, cs.cookie(), func(ctx context.Context, conn *pgx.Conn) error {
			close(sleeping)
			_, err := conn.Exec(ctx, "SELECT pg_sleep(5)")
			return err
		})
		if err != nil {
			t.Errorf("pg_sleep: %v", err)
		}
	})
	<-sleeping
	// Wait until the sleep is running on the server.
	deadline := time.Now().Add(5 * time.Second)
	for !sleepingNow(t, db, slow) {
		if time.Now().After(deadline) {
			t.Fatal("pg_sleep never showed up in pg_stat_activity")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 5 {
		if code, b := cf.do("POST", "/api/keys", map[string]string{"app": "live", "stream": "s" + itoa(int64(i))}); code != 201 {
			t.Fatalf("other session's request: %d %s", code, b)
		}
	}
	// The other session finished while the sleep still runs: no waiting on it.
	if !sleepingNow(t, db, slow) {
		t.Fatal("the other session's requests waited for the slow query")
	}
	wg.Wait()
}

func sleepingNow(t *testing.T, db *sessiontestDB, user string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.Cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename=$1 AND state='active' AND query LIKE '%pg_sleep%'", user).Scan(&n)
	return n > 0
}

// Test50Sessions: 50 concurrent sessions each hold their own backend; Close ends all.
func Test50Sessions(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u := db.CreateRole(t, "many", "pw", "mtrelay_user")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			c := e.client(t)
			if code := c.login(u, "pw"); code != 200 {
				t.Errorf("login: %d", code)
			}
		})
	}
	wg.Wait()
	if n := db.Backends(t, u); n != 50 {
		t.Fatalf("%d backends for 50 sessions", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.Backends(t, u) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backends left after Close", db.Backends(t, u))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
