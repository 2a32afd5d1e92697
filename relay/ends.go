package relay

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
)

// Why subscribers ended: the reasons of Hub.SubscriberEnds, one vocabulary for every
// protocol (RTMP players, RTMPT, HTTP-FLV, HLS, the player page).
const (
	EndClient      = "client_closed" // the output closed it without a reason: the client left
	EndTimeout     = "timeout"       // the output closed it after a write made no progress (CloseReason)
	EndSlow        = "slow"          // ErrSlowSubscriber: behind for longer than its SlowGrace
	EndNoPublisher = "no_publisher"  // ErrNoPublisher: waited longer than its PlayWait
	EndKicked      = "kicked"        // its stream's publisher was kicked (Hub.Kick) and no other came before it ended, or its output cut it off (CloseReason)
	EndBadInput    = "bad_input"     // the output closed it because its client sent bad input (CloseReason)
	EndShutdown    = "shutdown"      // Hub.Close
)

// EndReasons lists every reason of Hub.SubscriberEnds, in a fixed order.
var EndReasons = []string{EndClient, EndTimeout, EndSlow, EndNoPublisher, EndKicked, EndBadInput, EndShutdown}

// endCounts are the hub's counts of ended subscribers. Touched once per subscriber,
// when it ends; never on the publish path. mu is a leaf lock: it is taken with
// Hub.mu, stream.mu and Subscriber.mu possibly held, and nothing is taken under it.
type endCounts struct {
	shutdown atomic.Bool // set by Hub.Close before it ends the subscribers

	mu sync.Mutex
	m  map[string]map[string]int64 // guarded by mu: protocol → reason → count
}

func (e *endCounts) add(proto, reason string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]map[string]int64)
	}
	byReason := e.m[proto]
	if byReason == nil {
		byReason = make(map[string]int64, len(EndReasons))
		e.m[proto] = byReason
	}
	byReason[reason] += int64(n)
}

// SubscriberEnds returns how many subscribers ended since New, by protocol
// (SubscribeOptions.Protocol) and reason (the End* constants; every reason is present
// for each protocol listed). A subscriber with SubscribeOptions.Viewers counts as the
// viewers it stood for when it ended. Protocols appear once one of their
// subscribers ended.
func (h *Hub) SubscriberEnds() map[string]map[string]int64 {
	e := &h.ends
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]map[string]int64, len(e.m))
	for proto, byReason := range e.m {
		m := make(map[string]int64, len(EndReasons))
		for _, r := range EndReasons {
			m[r] = byReason[r]
		}
		out[proto] = m
	}
	return out
}

// countEndLocked counts the end of s with err; s.mu is held and only the first end
// counts (s.err still nil).
func (s *Subscriber) countEndLocked(err error) {
	if s.err != nil {
		return
	}
	h := s.st.hub
	var reason string
	switch {
	case err == ErrSlowSubscriber:
		reason = EndSlow
	case err == ErrClosed && h.ends.shutdown.Load():
		reason = EndShutdown
	case s.endReason != "":
		reason = s.endReason // a kick of its publisher, or what its output said
	case err == ErrNoPublisher:
		reason = EndNoPublisher
	default:
		reason = EndClient
	}
	n := 1
	if s.opts.Viewers != nil {
		n = s.opts.Viewers()
	}
	if n > 0 {
		h.ends.add(s.opts.Protocol, reason, n)
	}
}

// CloseReason is Close for an output that knows why it ends the subscriber: EndTimeout,
// EndBadInput or EndKicked (an operator cut this viewer off); "" or anything else
// counts as EndClient in Hub.SubscriberEnds. A subscriber whose publisher was kicked
// keeps EndKicked. Idempotent; only the first end of a subscriber is counted.
func (s *Subscriber) CloseReason(reason string) {
	switch reason {
	case EndTimeout, EndBadInput, EndKicked:
	default:
		reason = ""
	}
	s.mu.Lock()
	if s.err == nil && s.endReason == "" {
		s.endReason = reason
	}
	s.mu.Unlock()
	s.Close()
}

// EndReasonOf returns the CloseReason for an output that ended with err: EndTimeout
// for a write or read deadline (os.ErrDeadlineExceeded, a net.Error that timed out),
// "" (the client left) otherwise.
func EndReasonOf(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return EndTimeout
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return EndTimeout
	}
	return ""
}

// markKicked records, on every subscriber attached now, that the publisher p is being
// kicked, so that their end counts as EndKicked unless another publisher starts
// first (clearKickedLocked). No locks may be held.
func (st *stream) markKicked(p *Publisher) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pub != p {
		return
	}
	for _, s := range st.subs {
		s.mu.Lock()
		if s.err == nil && s.endReason == "" {
			s.endReason = EndKicked
		}
		s.mu.Unlock()
	}
}

// clearKickedLocked forgets the kick marks when a new publisher starts: the
// subscribers play again. st.mu must be held for writing.
func (st *stream) clearKickedLocked() {
	for _, s := range st.subs {
		s.mu.Lock()
		if s.err == nil && s.endReason == EndKicked {
			s.endReason = ""
		}
		s.mu.Unlock()
	}
}
