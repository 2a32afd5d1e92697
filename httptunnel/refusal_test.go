package httptunnel

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// lockedBuffer is a log writer safe for the Server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// refusalLine is one "rtmpt request(s) refused" log line.
type refusalLine struct {
	Level      string `json:"level"`
	Message    string `json:"message"`
	Reason     string `json:"reason"`
	Status     int    `json:"status"`
	Remote     string `json:"remote"`
	Suppressed int    `json:"suppressed"`
}

// take returns the lines logged since the last take.
func (b *lockedBuffer) take(t *testing.T) []refusalLine {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []refusalLine
	for line := range strings.Lines(b.buf.String()) {
		var l refusalLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, l)
	}
	b.buf.Reset()
	return out
}

// TestRefusalLog checks that refused requests (503 at MaxTunnels and MaxTunnelsPerIP,
// 413, 404 for an unknown id) are logged at warn, at most one line per reason per
// refusalLogInterval, that the lines held back are counted in "suppressed" (by the
// next line, or by the reaper once the interval passed), and that nothing is logged
// per request at info.
func TestRefusalLog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := &lockedBuffer{}
		const idle = 8 * time.Second // the reaper, which flushes the counts, runs every 2 s
		s, err := New(Config{MaxTunnels: 3, MaxTunnelsPerIP: 1, MaxBodyBytes: 10, IdleTimeout: idle},
			zerolog.New(logs).Level(zerolog.InfoLevel), ConnHandlerFunc(echo))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(t.Context())
		req := func(from, path string, body []byte) int {
			r := httptest.NewRequest("POST", path, bytes.NewReader(body))
			r.RemoteAddr = from + ":5555"
			r.Header.Set("Content-Type", fcs)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			return w.Code
		}
		want := func(what string, got []refusalLine, want ...refusalLine) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("%s: %d log lines %+v, want %d %+v", what, len(got), got, len(want), want)
			}
			for i := range want {
				want[i].Level = "warn"
				if got[i] != want[i] {
					t.Errorf("%s: line %d = %+v, want %+v", what, i, got[i], want[i])
				}
			}
		}
		const refused, refusedMany = "rtmpt request refused", "rtmpt requests refused"
		perIP, total := "MaxTunnelsPerIP reached", "MaxTunnels reached"
		tooLarge, unknown := "body above MaxBodyBytes", "unknown or ended tunnel id"

		if code := req("10.0.0.1", "/open/1", []byte{0}); code != 200 {
			t.Fatalf("first open: %d", code)
		}
		for range 5 {
			if code := req("10.0.0.1", "/open/1", []byte{0}); code != 503 {
				t.Fatalf("open above MaxTunnelsPerIP: %d, want 503", code)
			}
		}
		for _, ip := range []string{"10.0.0.2", "10.0.0.6"} {
			if code := req(ip, "/open/1", []byte{0}); code != 200 {
				t.Fatalf("open from %s: %d", ip, code)
			}
		}
		if code := req("10.0.0.3", "/open/1", []byte{0}); code != 503 {
			t.Fatalf("open above MaxTunnels: %d, want 503", code)
		}
		unknownID := strings.Repeat("ab", 16)
		for range 3 {
			if code := req("10.0.0.4", path(cmdIdle, unknownID, 0), []byte{0}); code != 404 {
				t.Fatalf("unknown id: %d, want 404", code)
			}
		}
		for range 2 {
			if code := req("10.0.0.5", "/open/1", make([]byte, 11)); code != 413 {
				t.Fatalf("body above MaxBodyBytes: %d, want 413", code)
			}
		}
		want("first refusals", logs.take(t),
			refusalLine{Message: refused, Reason: perIP, Status: http.StatusServiceUnavailable, Remote: "10.0.0.1:5555"},
			refusalLine{Message: refused, Reason: total, Status: http.StatusServiceUnavailable, Remote: "10.0.0.3:5555"},
			refusalLine{Message: refused, Reason: unknown, Status: http.StatusNotFound, Remote: "10.0.0.4:5555"},
			refusalLine{Message: refused, Reason: tooLarge, Status: http.StatusRequestEntityTooLarge, Remote: "10.0.0.5:5555"},
		)

		// Once the interval passed, the next refusal is logged with the count of the
		// ones held back.
		time.Sleep(refusalLogInterval - time.Millisecond)
		synctest.Wait()
		want("within the interval", logs.take(t))
		time.Sleep(time.Millisecond)
		if code := req("10.0.0.7", path(cmdSend, unknownID, 1), []byte{0}); code != 404 {
			t.Fatalf("unknown id: %d, want 404", code)
		}
		want("after the interval", logs.take(t),
			refusalLine{Message: refused, Reason: unknown, Status: http.StatusNotFound, Remote: "10.0.0.7:5555", Suppressed: 2})

		// With no further refusal, the reaper logs what is still held back.
		time.Sleep(idle / 4)
		synctest.Wait()
		want("reaper flush", logs.take(t),
			refusalLine{Message: refusedMany, Reason: perIP, Status: http.StatusServiceUnavailable, Suppressed: 4},
			refusalLine{Message: refusedMany, Reason: tooLarge, Status: http.StatusRequestEntityTooLarge, Suppressed: 1},
		)
		time.Sleep(refusalLogInterval)
		synctest.Wait()
		want("nothing held back", logs.take(t))
	})
}
