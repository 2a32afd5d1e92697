package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// TestSetLimits checks on synctest's fake clock that new limits apply at once: a
// shorter IdleTimeout or MaxAge ends sessions already past it without waiting for
// the old sweep interval, caps refuse new sessions (and end none), the failed-login
// limits judge the counts already made, and a bad value changes nothing.
func TestSetLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{Limits: Limits{IdleTimeout: time.Hour, MaxAge: 24 * time.Hour}}, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		if got := s.Limits(); got.IdleTimeout != time.Hour || got.MaxSessions != 1000 || got.MaxAnonymous != 10000 ||
			got.LoginFailuresPerUser != 5 || got.QueryTimeout != 30*time.Second {
			t.Fatalf("initial limits %+v: want the config's and the defaults", got)
		}
		a, _ := s.addInstance("a")
		b, _ := s.addInstance("b")
		anon, _ := s.addInstance("")
		time.Sleep(2 * time.Minute)
		if s.lookup(b.id) == nil { // b is used now; a and anon were last used 2 min ago
			t.Fatal("session ended before any limit changed")
		}

		// Idle timeout 1 min: a and anon end at once (the sweep runs on SetLimits, not
		// at the old 30 s tick); b, just used, stays.
		if err := s.SetLimits(Limits{IdleTimeout: time.Minute, MaxAge: 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if a.ctx.Err() == nil || anon.ctx.Err() == nil || b.ctx.Err() != nil {
			t.Fatalf("after IdleTimeout 1m: a ended %v, anon ended %v, b ended %v; want true, true, false",
				a.ctx.Err() != nil, anon.ctx.Err() != nil, b.ctx.Err() != nil)
		}
		if st := s.Stats(); st.Sessions != 1 || st.Anonymous != 0 {
			t.Fatalf("stats %+v, want 1 session and no anonymous one", st)
		}
		// MaxAge 90 s: b (3 min old) ends at its next request.
		if err := s.SetLimits(Limits{IdleTimeout: time.Minute, MaxAge: 90 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if s.lookup(b.id) != nil {
			t.Fatal("session older than the new MaxAge still served")
		}

		// Caps: lowering one ends nothing, it refuses new sessions of its kind.
		if err := s.SetLimits(Limits{MaxSessions: 1, MaxAnonymous: 1}); err != nil {
			t.Fatal(err)
		}
		c, err := s.addInstance("c")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.addInstance("d"); !errors.Is(err, ErrTooManySessions) {
			t.Fatalf("2nd session at MaxSessions 1: %v, want ErrTooManySessions", err)
		}
		if _, err := s.addInstance(""); err != nil {
			t.Fatalf("anonymous session under MaxAnonymous 1: %v", err)
		}
		if _, err := s.addInstance(""); !errors.Is(err, ErrTooManySessions) {
			t.Fatalf("2nd anonymous session at MaxAnonymous 1: %v, want ErrTooManySessions", err)
		}
		if err := s.SetLimits(Limits{MaxSessions: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.addInstance("d"); err != nil {
			t.Fatalf("2nd session at MaxSessions 2: %v", err)
		}
		if s.lookup(c.id) == nil {
			t.Fatal("a cap change ended a session")
		}

		// Failed logins: 3 failures are under the default 5, over a new limit of 3.
		now := time.Now()
		for range 3 {
			s.failed("192.0.2.1", "u", now)
		}
		if _, limited := s.limited("192.0.2.1", "u", now); limited {
			t.Fatal("limited after 3 failures with the default limit 5")
		}
		if err := s.SetLimits(Limits{LoginFailuresPerUser: 3}); err != nil {
			t.Fatal(err)
		}
		if _, limited := s.limited("192.0.2.9", "u", now); !limited {
			t.Fatal("not limited after 3 failures with LoginFailuresPerUser 3")
		}
		if err := s.SetLimits(Limits{LoginFailuresPerUser: 5, LoginFailuresPerIP: 2}); err != nil {
			t.Fatal(err)
		}
		if _, limited := s.limited("192.0.2.1", "other", now); !limited {
			t.Fatal("IP not limited after 3 failures with LoginFailuresPerIP 2")
		}

		// A negative value is refused and changes nothing.
		before := s.Limits()
		if err := s.SetLimits(Limits{QueryTimeout: -time.Second}); err == nil {
			t.Fatal("negative QueryTimeout accepted")
		}
		if s.Limits() != before {
			t.Fatal("a refused SetLimits changed the limits")
		}
	})
}

// TestSetLimitsConcurrent: SetLimits runs safely alongside lookups, logins' checks
// and the expiry sweep (run it with -race).
func TestSetLimitsConcurrent(t *testing.T) {
	t.Parallel()
	s, err := New(Config{}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	in, _ := s.addInstance("u")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				switch i {
				case 0:
					s.SetLimits(Limits{IdleTimeout: time.Duration(10+j) * time.Minute, MaxSessions: 1 + j})
				case 1:
					s.lookup(in.id)
				case 2:
					s.failed("192.0.2.1", "u", time.Now())
					s.limited("192.0.2.1", "u", time.Now())
				default:
					s.sweep(time.Now())
					_ = s.Stats()
				}
			}
		})
	}
	wg.Wait()
	if s.lookup(in.id) == nil {
		t.Fatal("session lost")
	}
}
