package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSessionSlowQueryIsolation: while user A's request runs a 5 s query on A's own
// database connection (a row-level security policy for role A alone calls
// pg_sleep(5) when A lists its keys), user B's requests answer at once, a stream
// already playing keeps every frame with no stall, and a new publish with a stream
// key (checked through the service role) is accepted. Each session has its own
// connection and lock, and the relay's media path never touches the database.
func TestSessionSlowQueryIsolation(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t)
	slowRole := r.db.CreateRole(t, "slowa", "pw", "mtrelay_user")
	fastRole := r.db.CreateRole(t, "fastb", "pw", "mtrelay_user")
	ca, cb := r.login(t, slowRole, "pw"), r.login(t, fastRole, "pw")
	ca.createKey("live", "a") // the row A's listing sleeps on (the policy runs per row)
	kb := cb.createKey("live", "b")
	kc := cb.createKey("live", "c")
	// As the superuser: A's reads of stream_keys sleep 5 s per row; nobody else's do.
	if err := execSQL(t, r.db.URL, `CREATE FUNCTION public.sleep5() RETURNS boolean LANGUAGE plpgsql
AS $$ BEGIN PERFORM pg_sleep(5); RETURN true; END $$;
CREATE POLICY sleepy ON mtrelay.stream_keys AS RESTRICTIVE FOR SELECT TO `+pgx.Identifier{slowRole}.Sanitize()+`
USING (public.sleep5())`); err != nil {
		t.Fatal(err)
	}

	// A stream with a player attached, published at real time with B's key: the
	// fixture's first 7 s, enough for A's query and a second on either side.
	const key = "live/b"
	tags := fixtureTags(t)
	for i, tg := range tags {
		if tg.Timestamp > 7000 {
			tags = tags[:i]
			break
		}
	}
	pl := r.player(t, "rtmp", key)
	pub := r.publisher(t, "rtmp", key+"?key="+kb.Key)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	read := goRead(t, ctx, pl, nil)
	p := newPacer(1, 0)
	sent := goSend(t, ctx, pub, tags, 0, p)
	if err := p.wait(ctx, 1000); err != nil {
		t.Fatal(err)
	}

	// A's slow request.
	var wg sync.WaitGroup
	slowStart := time.Now()
	var slowCode int
	var slowTook time.Duration
	slowDone := make(chan struct{})
	wg.Go(func() {
		defer close(slowDone)
		slowCode, _ = ca.do("GET", "/api/keys", nil)
		slowTook = time.Since(slowStart)
	})
	defer wg.Wait()
	waitFor(t, 5*time.Second, "A's pg_sleep to run", func() bool { return r.sleeping(t, slowRole) })
	sleepSeen := time.Now()

	// Meanwhile: a new publish with a key, and B's requests until A's returns.
	pubStart := time.Now()
	if _, err := goPublish(t, r.testRelay, "live", "c?key="+kc.Key); err != nil {
		t.Fatalf("new publish with a key during A's slow query: %v", err)
	}
	pubTook := time.Since(pubStart)
	var maxB time.Duration
	nB := 0
	for done := false; !done; {
		select {
		case <-slowDone:
			done = true
			continue
		default:
		}
		for _, path := range []string{"/api/keys", "/api/session"} {
			t0 := time.Now()
			if code, b := cb.do("GET", path, nil); code != http.StatusOK {
				t.Fatalf("B's GET %s during A's slow query: %d %s", path, code, b)
			}
			maxB = max(maxB, time.Since(t0))
			nB++
		}
		time.Sleep(20 * time.Millisecond)
	}
	bWindow := time.Since(sleepSeen)
	if slowCode != http.StatusOK || slowTook < 5*time.Second {
		t.Fatalf("A's GET /api/keys: %d after %v, want 200 after pg_sleep(5)", slowCode, slowTook)
	}
	if nB < 10 {
		t.Fatalf("only %d requests of B during A's query", nB)
	}
	if code, _ := ca.do("GET", "/api/session", nil); code != http.StatusOK {
		t.Fatalf("A's session after the slow query: %d", code)
	}
	sleepEnd := time.Now()

	// The stream: every frame, in order, no stall while A's query ran.
	if err := <-sent; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if err := pub.CloseStream(); err != nil {
		t.Fatal(err)
	}
	res := <-read
	wantUnpublished(t, "player", res)
	compareToTags(t, "player", res.msgs, tags, 0)
	var maxGap, maxGapDuring time.Duration
	var last time.Time
	for _, m := range res.msgs {
		if !isVideoFrame(m.typeID, m.payload) {
			continue
		}
		if !last.IsZero() {
			g := m.at.Sub(last)
			maxGap = max(maxGap, g)
			if m.at.After(slowStart) && last.Before(sleepEnd) {
				maxGapDuring = max(maxGapDuring, g)
			}
		}
		last = m.at
	}
	t.Logf("A's request took %v; during it: %d requests of B in %v, max latency %v; new keyed publish accepted in %v; "+
		"player: %d messages, max gap between video frames %v (%v while A's query ran; nominal 40 ms)",
		slowTook.Round(time.Millisecond), nB, bWindow.Round(time.Millisecond), maxB.Round(time.Microsecond),
		pubTook.Round(time.Microsecond), len(res.msgs), maxGap.Round(time.Millisecond), maxGapDuring.Round(time.Millisecond))
	// Functional bounds, not speed: had anything waited on A's query, it would have
	// waited for seconds.
	if maxB >= 2*time.Second || pubTook >= 2*time.Second {
		t.Errorf("B's requests (max %v) or the new publish (%v) waited on A's query", maxB, pubTook)
	}
	if maxGapDuring >= time.Second {
		t.Errorf("the player stalled for %v while A's query ran", maxGapDuring)
	}
}

// sleeping reports whether role has a backend waiting in pg_sleep.
func (r *dbRelay) sleeping(t *testing.T, role string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), r.db.Cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE usename = $1 AND wait_event = 'PgSleep'`, role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
