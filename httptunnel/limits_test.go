package httptunnel

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestSetLimits lowers and raises the tunnel caps, the body cap and the idle timeout
// of a running server: open tunnels survive a cap below their number, new /open/1
// requests and bodies follow the new values, and the reaper applies a shorter idle
// timeout to a tunnel opened under the old one.
func TestSetLimits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Config{MaxTunnels: 10, MaxTunnelsPerIP: 10, IdleTimeout: time.Hour}, ConnHandlerFunc(echo))
		openFrom := func(ip string) int {
			r := httptest.NewRequest("POST", "/open/1", bytes.NewReader([]byte{0}))
			r.RemoteAddr = ip + ":5555"
			r.Header.Set("Content-Type", fcs)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			return w.Code
		}
		for range 3 {
			if code := openFrom("10.0.0.1"); code != 200 {
				t.Fatalf("open: %d", code)
			}
		}
		id := open(t, s) // from httptest's default remote address

		if err := s.SetLimits(Limits{MaxTunnels: 10, MaxTunnelsPerIP: 2, MaxBodyBytes: 4, IdleTimeout: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if code := openFrom("10.0.0.1"); code != 503 {
			t.Errorf("open from an IP with 3 tunnels at MaxTunnelsPerIP 2: %d, want 503", code)
		}
		if code := openFrom("10.0.0.2"); code != 200 {
			t.Errorf("open from another IP: %d, want 200", code)
		}
		if n := s.Tunnels(); n != 5 {
			t.Errorf("Tunnels() = %d, want 5: lowering a cap closes nothing", n)
		}
		if w := do(t, s, "POST", path(cmdSend, id, 0), fcs, []byte("12345")); w.Code != 413 {
			t.Errorf("5-byte body at MaxBodyBytes 4: %d, want 413", w.Code)
		}
		if got := post(t, s, path(cmdSend, id, 0), []byte("1234")); len(got) == 0 {
			t.Error("4-byte body at MaxBodyBytes 4: empty reply")
		}

		if err := s.SetLimits(Limits{MaxTunnels: 5}); err != nil {
			t.Fatal(err)
		}
		if got := s.Limits(); got.MaxTunnelsPerIP != DefaultMaxTunnelsPerIP || got.MaxBodyBytes != DefaultMaxBodyBytes || got.IdleTimeout != DefaultIdleTimeout {
			t.Errorf("Limits() = %+v, want defaults for the zero fields", got)
		}
		if code := openFrom("10.0.0.3"); code != 503 {
			t.Errorf("open at MaxTunnels 5 with 5 open: %d, want 503", code)
		}

		// A shorter idle timeout reaches tunnels opened before it, within a quarter of
		// the old timeout (the reaper's old tick).
		if err := s.SetLimits(Limits{MaxTunnels: 5, IdleTimeout: time.Second}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour/4 + 2*time.Second) // the reaper ticked every 15 min under the first timeout
		synctest.Wait()
		if n := s.Tunnels(); n != 0 {
			t.Errorf("Tunnels() = %d after the idle timeout was cut to 1s, want 0", n)
		}

		if err := s.SetLimits(Limits{MaxTunnels: -1}); err == nil || !strings.Contains(err.Error(), "MaxTunnels") {
			t.Errorf("SetLimits with a negative MaxTunnels: %v, want an error naming it", err)
		}
		if got := s.Limits(); got.MaxTunnels != 5 {
			t.Errorf("a refused SetLimits changed the limits: %+v", got)
		}
	})
}
