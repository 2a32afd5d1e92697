package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// SubscribeOptions describes a subscriber.
type SubscribeOptions struct {
	Protocol string // "rtmp", "rtmpt", "http-flv", ...
	Remote   string
	// OnEvict, if set, is called at most once, without hub locks held, when the hub
	// evicts the subscriber (ErrSlowSubscriber, ErrNoPublisher) or is closed
	// (ErrClosed). It must not block; typically it closes the connection so a writer
	// blocked in Write returns. It is not called after Subscriber.Close.
	OnEvict func(err error)
	// Viewers, if set, is how many viewers this subscriber stands for in
	// StreamStats.Subscribers[Protocol], instead of one: a shared output such as one HLS
	// muxer per stream serving many HTTP clients. It is called with the stream's read
	// lock or the subscriber's own lock held (stats, and Hub.SubscriberEnds when the
	// subscriber ends), so it must be cheap and must not call back into the hub.
	Viewers func() int
	// WriteThrough, if set, lets the publisher's goroutine do the subscriber's output
	// work itself, the way an event loop does: when a published packet is queued for
	// an idle subscriber (its queue was empty), the publisher does not wake the
	// subscriber's Read or Wait but, after releasing the hub's locks, calls
	// WriteThrough(s). It must never block: typically it takes the queued frames with
	// TryRead and writes them with a non-blocking write, and hands whatever it cannot
	// finish at once to the subscriber's own goroutine with Wake. When it returns
	// without taking the frames, that goroutine must be about to look at the queue
	// again (it holds the output, see rtmp's writer) or be woken by WriteThrough.
	// It saves one goroutine wake-up per packet and subscriber. Packets queued by
	// anything but Publisher.WritePacket (joins, publisher start and end) still wake
	// Read and Wait.
	WriteThrough func(s *Subscriber)
	// OnWake, if set, is called each time s would wake a blocked Read or Wait: frames
	// queued outside WriteThrough, Wake, the end of s. A writer that does not keep a
	// goroutine blocked in Wait (it starts one only when there is work, see rtmp's lazy
	// writer) learns this way that there is work. It may be called with s's lock held:
	// it must not block nor call back into s.
	OnWake func()
}

// SubscriberStats counts what happened to one subscriber.
type SubscriberStats struct {
	Packets int64 `json:"packets"` // delivered by Read
	Bytes   int64 `json:"bytes"`   // payload bytes delivered by Read
	Dropped int64 `json:"dropped"` // packets dropped on overflow
}

// waitState says whether a subscriber skips video until the next keyframe.
type waitState uint8

const (
	waitNone  waitState = iota // deliver video
	waitStart                  // joined, or a publisher (re)appeared: skipped frames are not drops
	waitDrop                   // queued video was dropped on overflow: skipped frames count as drops
)

// reconnectGapMS is how far after the last frame of the previous publisher the first
// frame of the next one is placed, so a subscriber's timestamps keep increasing.
const reconnectGapMS = 1

// Subscriber receives a stream's packets through a bounded queue.
//
// The stream's publisher pushes under the stream lock and s.mu; the subscriber's
// goroutine pops in Read under s.mu. Read is meant to be called from one goroutine.
// A subscriber with SubscribeOptions.WriteThrough is also taken from by the
// publisher's goroutine (TryRead); its output then serialises the two itself.
type Subscriber struct {
	st     *stream          // immutable
	lim    *limits          // immutable; the hub's when s joined
	opts   SubscribeOptions // immutable
	since  time.Time        // immutable
	notify chan struct{}    // capacity 1, never closed; signalled when the queue stops being empty or err is set

	mu          sync.Mutex
	q           queue     // guarded by mu
	err         error     // guarded by mu; once set, Read returns it and the queue stays released
	wait        waitState // guarded by mu
	behind      bool      // guarded by mu; overflowed and has not caught up since
	behindSince time.Time // guarded by mu; when behind became true
	deadline    time.Time // guarded by mu; while no publisher is live: when Read gives up with ErrNoPublisher
	endReason   string    // guarded by mu; End* reason given by a kick or by CloseReason (ends.go)

	// Timestamp rebasing, guarded by mu: a frame's time is
	// max(last, Packet.Timestamp - origin + base).
	sessions  int   // publishers seen, including the current one
	originSet bool  // origin is the publisher time of the session's first delivered media
	origin    int64 // publisher time that maps to base
	base      int64 // subscriber time of the current session's first frame
	last      int64 // latest subscriber time handed out

	packets, bytes, dropped atomic.Int64 // for Stats
	woken                   atomic.Bool  // set by Wake, cleared by the Read it wakes
}

// limits are a hub's queue limits in the units the push path compares.
type limits struct {
	packets   int
	bytes     int
	durMS     int64
	slowGrace time.Duration
	playWait  time.Duration
}

func newSubscriber(st *stream, opts SubscribeOptions, now time.Time) *Subscriber {
	lim := st.hub.queueLimits() // fixed for this subscriber's life (Hub.SetLimits)
	return &Subscriber{
		st:     st,
		lim:    lim,
		opts:   opts,
		since:  now,
		notify: make(chan struct{}, 1),
		q:      queue{max: lim.packets},
	}
}

// Wake makes a Read that is blocked, or the next one, return at once with no frames
// and a nil error when nothing is queued. The subscriber's writer uses it to send other
// output (protocol replies) without waiting for media. Safe from any goroutine.
func (s *Subscriber) Wake() {
	s.woken.Store(true)
	s.signal()
}

// signal wakes a Read blocked on s.notify without ever blocking the caller.
func (s *Subscriber) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if s.opts.OnWake != nil {
		s.opts.OnWake()
	}
}

// Idle reports whether a Wait would block until something signals s: nothing is
// queued, s has not ended and no PlayWait clock runs (a Wait without a live publisher
// gives up on its own at the deadline). A writer with SubscribeOptions.OnWake may
// then stop waiting altogether.
func (s *Subscriber) Idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && s.q.n == 0 && s.deadline.IsZero()
}

// setErrLocked ends s with err: the queue is released and Read wakes up.
func (s *Subscriber) setErrLocked(err error) {
	s.st.hub.tot.countEnd(err)
	s.countEndLocked(err) // ends.go
	s.err = err
	s.q.release()
	s.signal()
}

// end sets err unless s has already ended; it reports whether it did, that is,
// whether the caller owns the OnEvict call.
func (s *Subscriber) end(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.setErrLocked(err)
	return true
}

// startSessionLocked prepares s for frames of a new publisher: timestamps continue
// after the last one, video waits for a keyframe and the PlayWait clock stops.
func (s *Subscriber) startSessionLocked() {
	if s.sessions > 0 {
		s.base = s.last + reconnectGapMS
	}
	s.sessions++
	s.last = s.base
	s.originSet = false
	s.wait = waitStart
	s.deadline = time.Time{}
}

// sessionStart queues KindStreamStart for a publisher that appeared while s was
// attached. It reports whether s must be evicted (see push).
func (s *Subscriber) sessionStart(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.startSessionLocked()
	ev, _ := s.pushLocked(startPacket, now, false)
	return ev
}

// sessionEnd queues KindStreamEnd and starts the PlayWait clock. It reports whether
// s must be evicted (see push).
func (s *Subscriber) sessionEnd(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.deadline = now.Add(s.lim.playWait)
	ev, _ := s.pushLocked(endPacket, now, false)
	if s.q.n > 1 {
		// Frames queued before the end may be owed to WriteThrough by a publisher
		// that did not close itself (Hub.Kick): wake the reader, which takes them all.
		s.signal()
	}
	return ev
}

// push queues p from Publisher.WritePacket without blocking. It reports evict when
// this push evicted s as slow: the caller must then, after releasing the stream lock,
// finish the eviction (stream.finishEvictions); and direct when the caller must call
// SubscribeOptions.WriteThrough instead of s having woken its reader. now is the
// publisher's clock for this packet.
func (s *Subscriber) push(p *Packet, now time.Time) (evict, direct bool) {
	s.mu.Lock()
	evict, direct = s.pushLocked(p, now, s.opts.WriteThrough != nil)
	s.mu.Unlock()
	return evict, direct
}

// pushLocked queues p; with writeThrough, a push to an empty queue reports direct
// instead of waking Read.
func (s *Subscriber) pushLocked(p *Packet, now time.Time, writeThrough bool) (evict, direct bool) {
	if s.err != nil {
		return false, false
	}
	if s.behind && now.Sub(s.behindSince) > s.lim.slowGrace {
		s.setErrLocked(ErrSlowSubscriber)
		return true, false
	}
	video := p.isVideoFrame()
	if video && s.wait != waitNone && !p.Keyframe {
		if s.wait == waitDrop {
			s.countDrops(1)
		}
		return false, false
	}
	f := Frame{Packet: p, Timestamp: s.rebase(p)}
	if !s.fits(f) {
		accept, evict := s.overflow(f, now)
		if evict {
			s.setErrLocked(ErrSlowSubscriber)
			return true, false
		}
		if !accept {
			return false, false
		}
	}
	s.q.push(f)
	if video {
		s.wait = waitNone // p is a keyframe, or nothing was waited for
	}
	if s.q.n == 1 {
		// Read only waits when it found the queue empty, so only this push needs to
		// wake it; later pushes find the queue non-empty and skip the channel.
		if writeThrough {
			return false, true
		}
		s.signal()
	}
	return false, false
}

// rebase returns p's time for this subscriber and advances s.last.
func (s *Subscriber) rebase(p *Packet) int64 {
	if !s.originSet {
		// Events, metadata and sequence headers before the session's first media get
		// the time of the media that follows them: base.
		if p.isMedia() {
			s.originSet = true
			s.origin = p.Timestamp
		}
		return s.last
	}
	if p.Kind == KindStreamStart || p.Kind == KindStreamEnd {
		return s.last
	}
	ts := p.Timestamp - s.origin + s.base
	if ts < s.last {
		ts = s.last // keep time monotonic: interleaving jitter, negative times, clock steps back
	}
	s.last = ts
	return ts
}

// fits reports whether f can be queued within the packet, byte and duration limits.
// An empty queue takes anything, so that one oversized frame cannot wedge it.
func (s *Subscriber) fits(f Frame) bool {
	q := &s.q
	if q.n == 0 {
		return true
	}
	if q.n >= s.lim.packets || q.bytes+len(f.Packet.Payload) > s.lim.bytes {
		return false
	}
	if f.Packet.isMedia() {
		if i := q.firstMedia(); i >= 0 && f.Timestamp-q.at(i).Timestamp > s.lim.durMS {
			return false
		}
	}
	return true
}

// overflow makes room for f, which does not fit. Policy: drop every queued video
// frame and wait for the next keyframe (unless f is one); keep metadata, sequence
// headers and events; if still over a limit, drop the oldest audio. It reports
// whether f may now be queued, or whether s must be evicted because not even an
// essential frame fits.
func (s *Subscriber) overflow(f Frame, now time.Time) (accept, evict bool) {
	if !s.behind {
		s.behind, s.behindSince = true, now
	}
	p := f.Packet
	n := int64(s.q.dropVideo())
	if n > 0 {
		s.wait = waitDrop
	}
	defer func() { s.countDrops(n) }()
	if p.isVideoFrame() && !p.Keyframe {
		s.wait = waitDrop
		n++
		return false, false
	}
	for !s.fits(f) {
		if !s.q.dropOldestMedia() {
			break
		}
		n++
	}
	if s.fits(f) {
		return true, false
	}
	if p.isMedia() {
		if p.isVideoFrame() {
			s.wait = waitDrop
		}
		n++
		return false, false
	}
	return false, true
}

func (s *Subscriber) countDrops(n int64) {
	if n > 0 {
		s.dropped.Add(n)
		s.st.dropped.Add(n)
		s.st.hub.tot.dropped.Add(n)
	}
}

// caughtUpLocked reports whether a behind subscriber has drained its queue to
// half of every limit, which ends the SlowGrace clock.
func (s *Subscriber) caughtUpLocked() bool {
	q := &s.q
	return q.n*2 <= s.lim.packets && q.bytes*2 <= s.lim.bytes && q.mediaSpan()*2 <= s.lim.durMS
}

// Read blocks until at least one frame is queued (or Wake is called), then appends up to cap(dst)-len(dst)
// frames to dst and returns it. A new subscriber first gets KindStreamStart (if a publisher
// is live), then the latest metadata, video and audio sequence headers, then the cached GOP
// from its last keyframe, then live packets; the first video frame is always a keyframe.
// Errors: ctx.Err(), ErrSlowSubscriber, ErrNoPublisher, ErrClosed.
//
// If dst has no spare capacity, Read appends one frame (growing dst). Reading into a
// reused dst with spare capacity allocates nothing.
func (s *Subscriber) Read(ctx context.Context, dst []Frame) ([]Frame, error) {
	return s.read(ctx, dst, true)
}

// Wait blocks like Read until a frame is queued (or Wake is called, or an error
// ends s), but takes nothing: the caller then takes the frames with TryRead. A
// writer that shares its output with SubscribeOptions.WriteThrough waits this way so
// that taking frames and writing them happen under its own lock. It returns Read's
// errors.
func (s *Subscriber) Wait(ctx context.Context) error {
	_, err := s.read(ctx, nil, false)
	return err
}

// TryRead appends up to cap(dst)-len(dst) queued frames (at least one, if any are
// queued) to dst without waiting, and returns it; it returns the error that ended s,
// if any. It does not consume a Wake.
func (s *Subscriber) TryRead(dst []Frame) ([]Frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return dst, s.err
	}
	if s.q.n > 0 {
		dst = s.takeLocked(dst)
	}
	return dst, nil
}

// read is Read, and Wait when take is false.
func (s *Subscriber) read(ctx context.Context, dst []Frame, take bool) ([]Frame, error) {
	done := ctx.Done()
	for {
		select {
		case <-done:
			return dst, ctx.Err()
		default:
		}
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return dst, err
		}
		if s.q.n > 0 {
			if take {
				dst = s.takeLocked(dst)
			}
			s.mu.Unlock()
			return dst, nil
		}
		if s.woken.Swap(false) {
			s.mu.Unlock()
			return dst, nil
		}
		wait := time.Duration(-1)
		if !s.deadline.IsZero() {
			wait = time.Until(s.deadline)
			if wait <= 0 {
				s.setErrLocked(ErrNoPublisher)
				s.mu.Unlock()
				s.st.finishEvictions([]*Subscriber{s}, ErrNoPublisher)
				return dst, ErrNoPublisher
			}
		}
		s.mu.Unlock()

		if wait < 0 {
			if done == nil {
				// A context that is never done (the caller stops Read with Wake): a plain
				// receive is cheaper than a select on the hot path.
				<-s.notify
				continue
			}
			select {
			case <-s.notify:
			case <-done:
				return dst, ctx.Err()
			}
			continue
		}
		// No publisher: wait for one at most until the deadline. Not a steady-state
		// path, so the timer allocation does not matter.
		t := time.NewTimer(wait)
		select {
		case <-s.notify:
		case <-t.C:
		case <-done:
			t.Stop()
			return dst, ctx.Err()
		}
		t.Stop()
	}
}

// takeLocked moves queued frames to dst.
func (s *Subscriber) takeLocked(dst []Frame) []Frame {
	n := min(max(cap(dst)-len(dst), 1), s.q.n)
	var bytes int64
	for range n {
		f := s.q.pop()
		bytes += int64(len(f.Packet.Payload))
		dst = append(dst, f)
	}
	s.packets.Add(int64(n))
	s.bytes.Add(bytes)
	if s.behind && s.caughtUpLocked() {
		s.behind = false
	}
	return dst
}

// Close detaches the subscriber: a blocked Read returns, and later Reads return
// ErrClosed. OnEvict is not called. Idempotent.
func (s *Subscriber) Close() {
	s.mu.Lock()
	if s.err != ErrClosed {
		s.setErrLocked(ErrClosed)
	}
	s.mu.Unlock()
	if !s.st.removeSub(s) {
		return
	}
	ss := s.Stats()
	s.st.log.Debug().Str("protocol", s.opts.Protocol).Str("remote", s.opts.Remote).
		Int64("packets", ss.Packets).Int64("dropped", ss.Dropped).Msg("subscriber left")
}

// Stats returns this subscriber's counters.
func (s *Subscriber) Stats() SubscriberStats {
	return SubscriberStats{
		Packets: s.packets.Load(),
		Bytes:   s.bytes.Load(),
		Dropped: s.dropped.Load(),
	}
}
