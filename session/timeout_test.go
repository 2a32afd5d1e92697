package session_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mtrelay/mtrelay/session"
)

// TestQueryTimeoutKeepsSession: a query past QueryTimeout (lowered live with
// SetLimits) is cancelled on the server and answered 503 at once, and the session
// and its connection stay usable: the same backend serves the next request.
func TestQueryTimeoutKeepsSession(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u := db.CreateRole(t, "tmo", "pw", "mtrelay_user")
	c := e.client(t)
	if code := c.login(u, "pw"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	c.createKey("live", "t")
	pid := func() int {
		t.Helper()
		var pid int
		if err := session.RunForTest(e.store, c.cookie(), func(ctx context.Context, conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
		}); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	before := pid()
	su, err := pgx.Connect(t.Context(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	if _, err := su.Exec(t.Context(), `CREATE FUNCTION public.sleep5() RETURNS boolean LANGUAGE plpgsql
AS $$ BEGIN PERFORM pg_sleep(5); RETURN true; END $$;
CREATE POLICY sleepy ON mtrelay.stream_keys AS RESTRICTIVE FOR SELECT TO `+pgx.Identifier{u}.Sanitize()+` USING (public.sleep5())`); err != nil {
		t.Fatal(err)
	}
	lim := e.store.Limits()
	lim.QueryTimeout = 300 * time.Millisecond
	if err := e.store.SetLimits(lim); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	code, b := c.do("GET", "/api/keys", nil)
	took := time.Since(t0)
	if code != http.StatusServiceUnavailable || took >= 4*time.Second {
		t.Fatalf("GET /api/keys past QueryTimeout: %d %s after %v, want 503 before the 5 s query ends", code, b, took)
	}
	t.Logf("query past the 300 ms QueryTimeout answered %d after %v: %s", code, took.Round(time.Millisecond), b)
	if _, err := su.Exec(t.Context(), "DROP POLICY sleepy ON mtrelay.stream_keys"); err != nil {
		t.Fatal(err)
	}
	if code, b := c.do("GET", "/api/keys", nil); code != http.StatusOK {
		t.Fatalf("GET /api/keys after the timeout: %d %s, want 200 (session kept)", code, b)
	}
	if after := pid(); after != before {
		t.Fatalf("backend %d replaced by %d: the timeout cost the session its connection", before, after)
	}
	if s := e.store.Stats(); s.DatabaseErrors != 1 || s.Sessions != 1 {
		t.Fatalf("stats %+v, want the timeout counted as 1 database error and the session live", s)
	}
}
