package session

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// TestExpirySynctest checks the expiry rules on the fake clock of testing/synctest:
// a used session outlives IdleTimeout, an unused one ends after it, every session
// ends at MaxAge however busy, and login-failure windows are forgotten. The
// database side (the backend leaving pg_stat_activity) is TestBackendLifetime's, on
// a real cluster and so on the real clock.
func TestExpirySynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{Limits: Limits{IdleTimeout: time.Minute, MaxAge: 10 * time.Minute}}, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		add := func() *instance {
			now := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			in := &instance{id: newID(idBytes), csrf: newID(idBytes), user: "u", created: now, lastSeen: now,
				ctx: ctx, cancel: cancel, log: zerolog.Nop()}
			s.mu.Lock()
			s.sessions[in.id] = in
			s.mu.Unlock()
			return in
		}
		busy, idle := add(), add()
		s.failed("192.0.2.1", "u", time.Now())

		for range 5 { // 5 × 50s: busy is used more often than IdleTimeout
			time.Sleep(50 * time.Second)
			synctest.Wait()
			if s.lookup(busy.id) == nil {
				t.Fatalf("used session expired at %v", time.Since(busy.created))
			}
		}
		if s.lookup(idle.id) != nil {
			t.Fatal("unused session outlived IdleTimeout")
		}
		synctest.Wait()
		if idle.ctx.Err() == nil {
			t.Fatal("expired session's context not cancelled (its query would go on)")
		}
		s.mu.Lock()
		nfails := len(s.fails)
		s.mu.Unlock()
		if nfails != 0 {
			t.Fatalf("%d login-failure windows left after LoginWindow", nfails)
		}

		for time.Since(busy.created) < 10*time.Minute-30*time.Second {
			time.Sleep(30 * time.Second)
			if s.lookup(busy.id) == nil {
				t.Fatalf("busy session ended at %v, before MaxAge", time.Since(busy.created))
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if s.Sessions() != 0 || busy.ctx.Err() == nil {
			t.Fatal("busy session outlived MaxAge")
		}
	})
}
