package httptunnel

import (
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// refusalLogInterval is the shortest time between two warn lines for one refusal
// reason. A client that retries in a loop (or every client behind one proxy hitting
// MaxTunnelsPerIP) would otherwise write a line per request.
const refusalLogInterval = 5 * time.Second

// refusal is why a request was refused; each reason is rate-limited on its own.
type refusal int

const (
	refusedMaxTunnels      refusal = iota // /open/1 above MaxTunnels: 503
	refusedMaxTunnelsPerIP                // /open/1 above MaxTunnelsPerIP: 503
	refusedBodyTooLarge                   // body above MaxBodyBytes: 413
	refusedUnknownID                      // unknown or ended tunnel id: 404
	numRefusals
)

// refusalInfo is the reason text and HTTP status of each refusal.
var refusalInfo = [numRefusals]struct {
	reason string
	status int
}{
	refusedMaxTunnels:      {"MaxTunnels reached", http.StatusServiceUnavailable},
	refusedMaxTunnelsPerIP: {"MaxTunnelsPerIP reached", http.StatusServiceUnavailable},
	refusedBodyTooLarge:    {"body above MaxBodyBytes", http.StatusRequestEntityTooLarge},
	refusedUnknownID:       {"unknown or ended tunnel id", http.StatusNotFound},
}

// refusalLog logs refused requests at warn level, at most one line per reason per
// refusalLogInterval (→ derp limitedLogf, STYLE.md §5 "never log per packet"). A line
// carries the refused request's remote address and "suppressed", the number of
// refusals for that reason since the previous line that were not logged. Counts still
// pending when refusals stop are logged by flush (called from the reaper), so none is
// lost for long.
type refusalLog struct {
	log zerolog.Logger // immutable after New

	mu         sync.Mutex
	last       [numRefusals]time.Time // guarded by mu: when the last line for each reason was written
	suppressed [numRefusals]int       // guarded by mu: refusals not logged since that line
}

// refused counts one refusal and logs it unless a line for the same reason was
// written less than refusalLogInterval ago.
func (l *refusalLog) refused(why refusal, remote string) {
	now := time.Now()
	l.mu.Lock()
	if !l.last[why].IsZero() && now.Sub(l.last[why]) < refusalLogInterval {
		l.suppressed[why]++
		l.mu.Unlock()
		return
	}
	n := l.suppressed[why]
	l.last[why], l.suppressed[why] = now, 0
	l.mu.Unlock()
	info := refusalInfo[why]
	l.log.Warn().Str("reason", info.reason).Int("status", info.status).Str("remote", remote).
		Int("suppressed", n).Msg("rtmpt request refused")
}

// flush logs the suppressed counts of the reasons whose last line is at least
// refusalLogInterval old.
func (l *refusalLog) flush(now time.Time) {
	var counts [numRefusals]int
	l.mu.Lock()
	for why := range numRefusals {
		if l.suppressed[why] > 0 && now.Sub(l.last[why]) >= refusalLogInterval {
			counts[why] = l.suppressed[why]
			l.last[why], l.suppressed[why] = now, 0
		}
	}
	l.mu.Unlock()
	for why, n := range counts {
		if n > 0 {
			info := refusalInfo[why]
			l.log.Warn().Str("reason", info.reason).Int("status", info.status).
				Int("suppressed", n).Msg("rtmpt requests refused")
		}
	}
}
