package rtmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// flushBytes is how much a writer gathers before it writes, at most.
const flushBytes = 256 << 10

// maxPendingControl bounds the protocol replies queued for one connection.
const maxPendingControl = 1 << 20

// errBacklog closes a connection that makes us queue replies it does not read.
var errBacklog = errors.New("rtmp: peer does not read its replies (over 1 MiB queued)")

// writer owns a connection's output after the handshake. The reader queues control
// and command messages (already chunked) with enqueue; media comes from the relay
// subscriber. Everything gathered in one round goes out in one Write, so a player
// costs one syscall per batch, not per chunk (go-rtmp flushes every chunk).
//
// Two goroutines write: run, the connection's writer goroutine, and, on plain TCP, the
// publisher's goroutine through writeThrough (relay.SubscribeOptions.WriteThrough).
// Whoever holds wmu takes frames from the subscriber and writes them, so frames go
// out in queue order. writeThrough only ever tries wmu and makes one non-blocking
// writev; whatever it cannot finish (a full socket buffer, an error, pending replies)
// it leaves to run, which it wakes. run waits for media with Subscriber.Wait, without
// wmu, and takes it with TryRead under wmu.
//
// On plain TCP the writer is lazy: run is not a goroutine for the connection's life
// but one started by kick when there is work (Subscriber.Wake and the subscriber's
// other signals through relay.SubscribeOptions.OnWake, enqueue, play, the end) and
// ending (parking) as soon as it finds none. Only while no publisher is live does it
// stay in Wait, for the PlayWait deadline.
type writer struct {
	c          *conn
	wake       chan struct{} // 1-buffered; signalled when pending grows or play starts/stops
	done       chan struct{} // closed by run when it returns
	err        error         // why run returned; written by run before done is closed
	bytesOut   atomic.Int64
	hasPending atomic.Bool                // pending is not empty (set by enqueue, cleared by run)
	direct     atomic.Pointer[directPlay] // the play writeThrough serves; nil when none

	mu      sync.Mutex
	pending []byte            // guarded by mu: chunked control messages to send
	sub     *relay.Subscriber // guarded by mu: the play subscriber, or nil
	sid     uint32            // guarded by mu: message stream id of the play
	key     string            // guarded by mu

	wmu      sync.Mutex // held to take frames from sub and write them: by run or writeThrough
	rest     [][]byte   // guarded by wmu: what writeThrough could not write; run writes it next
	restSc   *scratch   // guarded by wmu: the scratch rest points into, until it is written
	werr     error      // guarded by wmu: writeThrough's write error; run returns it
	started  bool       // guarded by wmu: a KindStreamStart was seen
	deadline time.Time  // guarded by wmu: the write deadline set on the connection
	flat     []byte     // guarded by wmu: a batch flattened for non-TCP connections

	// A lazy writer (plain TCP, where writeThrough does the steady-state writes) keeps
	// no goroutine while it has nothing to do: run parks (returns) when it finds no
	// work, and kick starts it again. Waiting players then cost no goroutine stack for
	// their output.
	lazy   bool            // immutable
	ctx    context.Context // immutable after start: the context run gets
	runner relay.Lazy      // a lazy writer's run goroutine
}

// errParked is returned by a loop that parked, a lazy writer's or a connection's
// reader: its goroutine returns without ending anything.
var errParked = errors.New("rtmp: writer parked")

// directPlay is the play a writer's writeThrough serves.
type directPlay struct {
	sub *relay.Subscriber
	sid uint32
}

// scratch is what a writer needs only while it writes: a batch and the frames taken
// from the subscriber. Players are idle nearly all the time, so scratches are pooled
// rather than kept per connection.
type scratch struct {
	b      batch
	frames []relay.Frame
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{b: batch{own: make([]byte, 0, 1<<10)}, frames: make([]relay.Frame, 0, 64)}
}}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch returns sc to the pool without references to packets.
func putScratch(sc *scratch) {
	sc.b.reset()
	if cap(sc.b.own) > 64<<10 {
		sc.b.own = make([]byte, 0, 1<<10) // a whole message copied for one player (extended timestamps)
	}
	clear(sc.frames[:cap(sc.frames)])
	sc.frames = sc.frames[:0]
	scratchPool.Put(sc)
}

func newWriter(c *conn) *writer {
	w := &writer{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}), lazy: c.raw != nil}
	w.runner.Run = func() { w.run(w.ctx) }
	return w
}

// start starts the writer with ctx: its goroutine for good, or a lazy writer's first
// run.
func (w *writer) start(ctx context.Context) {
	w.ctx = ctx
	if !w.lazy {
		go w.run(ctx)
		return
	}
	w.kick()
}

// kick makes a lazy writer look for work (relay.Lazy.Kick): it starts run unless run
// is active, in which case run looks again before it parks. Safe from any goroutine,
// also with locks held (relay.SubscribeOptions.OnWake); it never blocks.
func (w *writer) kick() { w.runner.Kick() }

// wakeHook returns the relay.SubscribeOptions.OnWake for a play on this connection:
// kick for a lazy writer, nil otherwise (run then waits in Subscriber.Wait).
func (w *writer) wakeHook() func() {
	if !w.lazy {
		return nil
	}
	return w.kick
}

// finish makes the writer end once the connection's context is done; run's caller
// then waits for done.
func (w *writer) finish() {
	if !w.lazy {
		return
	}
	w.mu.Lock()
	sub := w.sub
	w.mu.Unlock()
	if sub != nil {
		sub.Wake() // a run waiting for a publisher (PlayWait) looks at ctx
	}
	w.kick()
}

func (w *writer) signal() {
	if w.lazy {
		w.kick()
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// enqueue appends chunked bytes to send. Called by the reader goroutine.
//
// Replies a peer makes us queue are bounded: a peer that sends commands (pings,
// unknown calls) without reading the answers would otherwise grow pending without
// limit. Past maxPendingControl, enqueue drops b and reports false; the reader then
// closes the connection.
func (w *writer) enqueue(b []byte) bool {
	w.mu.Lock()
	if len(w.pending)+len(b) > maxPendingControl {
		w.mu.Unlock()
		return false
	}
	w.pending = append(w.pending, b...)
	w.hasPending.Store(true)
	sub := w.sub
	w.mu.Unlock()
	w.signal()
	if sub != nil {
		sub.Wake()
	}
	return true
}

func (w *writer) playing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sub != nil
}

// writeThroughHook returns the relay.SubscribeOptions.WriteThrough for a play on
// this connection, or nil when the publisher's goroutine cannot write for it: the
// connection is not plain TCP (TLS, RTMPT). Config.WriteCoalesce then holds audio on
// the publisher's side (relay.Publisher.FlushHoldingAudio), not in run.
func (w *writer) writeThroughHook() func(*relay.Subscriber) {
	if w.c.raw == nil {
		return nil
	}
	return w.writeThrough
}

// play hands a subscriber to the writer. Messages queued before stay ahead of its media.
func (w *writer) play(sub *relay.Subscriber, sid uint32, key string) {
	w.mu.Lock()
	w.sub, w.sid, w.key = sub, sid, key
	w.mu.Unlock()
	w.direct.Store(&directPlay{sub: sub, sid: sid})
	w.signal()
}

// stopPlay detaches the subscriber, ending it for reason (relay.Subscriber.CloseReason;
// "": its client left), and returns what it delivered.
func (w *writer) stopPlay(reason string) relay.SubscriberStats {
	w.direct.Store(nil)
	w.mu.Lock()
	sub := w.sub
	w.sub = nil
	w.mu.Unlock()
	var st relay.SubscriberStats
	if sub != nil {
		st = sub.Stats()
		sub.CloseReason(reason)
		sub.Wake()
	}
	w.signal()
	return st
}

// run writes until ctx is done or a write fails; on a failure it closes the connection
// so the reader ends too.
//
// A lazy writer's run also returns when it parks; the writer has ended only once done
// is closed.
func (w *writer) run(ctx context.Context) {
	var err error
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: writer panic: %v", errProtocol, r)
			w.c.log.Error().Str("panic", fmt.Sprint(r)).Msg("panic in writer")
		}
		if err == errParked {
			return
		}
		w.err = err
		w.c.close()
		close(w.done) // the runner stays running: no kick starts run again
	}()
	err = w.loop(ctx)
}

func (w *writer) loop(ctx context.Context) error {
	var (
		woken    *relay.Subscriber // the subscriber whose Wait ctx cancellation wakes
		unwake   = func() bool { return false }
		coalesce *time.Timer // wakes woken after Config.WriteCoalesce; nil when off
	)
	defer func() { unwake() }()
	for {
		if w.lazy {
			w.runner.Round() // what is there now, this round sees
		}
		w.mu.Lock()
		ctrl := w.pending
		w.pending = nil // replies are rare: an idle connection keeps no buffer for them
		w.hasPending.Store(false)
		sub, sid := w.sub, w.sid
		w.mu.Unlock()

		if sub != nil && sub != woken && !w.lazy {
			// Wait without a cancellable context (a cheaper wait per packet); ctx's
			// end wakes it instead (a lazy writer's: finish).
			unwake()
			unwake, woken = context.AfterFunc(ctx, sub.Wake), sub
			if coalesce != nil {
				coalesce.Stop()
			}
			if w.c.srv.cfg.WriteCoalesce > 0 && w.c.raw == nil {
				// TCP players get their audio held by the publisher (writeThroughHook).
				coalesce = time.AfterFunc(time.Hour, sub.Wake)
				coalesce.Stop()
			}
		}
		if sub != nil && len(ctrl) == 0 && !(w.lazy && sub.Idle()) {
			// A lazy writer waits only while no publisher is live (the PlayWait
			// clock); otherwise it takes what is queued and parks.
			err := sub.Wait(context.Background())
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				if !w.stillPlaying(sub) {
					continue // stopPlay closed it
				}
				return w.endPlay(err, sid)
			}
		}
		w.wmu.Lock()
		sent, rerr, werr := w.flushLocked(ctx, ctrl, sub, sid, coalesce)
		w.wmu.Unlock()
		if werr != nil {
			return werr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rerr != nil {
			if !w.stillPlaying(sub) {
				continue // stopPlay closed it
			}
			return w.endPlay(rerr, sid)
		}
		if w.lazy && !sent {
			// Replies and the end of a play kick; only the subscriber's queue and its
			// PlayWait clock are left to look at.
			if w.runner.Park(func() bool { return sub == nil || sub.Idle() }) {
				return errParked
			}
			continue
		}
		if sub == nil && !sent {
			select {
			case <-w.wake:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// flushLocked writes, in order, what writeThrough left, the control messages ctrl and
// the frames queued for sub (blocking until they are written). It reports whether it
// wrote anything, the subscriber's error (after writing ctrl) and a write error. wmu
// must be held.
func (w *writer) flushLocked(ctx context.Context, ctrl []byte, sub *relay.Subscriber, sid uint32, coalesce *time.Timer) (sent bool, rerr, werr error) {
	if w.werr != nil {
		return false, nil, w.werr
	}
	if err := w.writeRestLocked(); err != nil {
		return false, nil, err
	}
	sc := getScratch()
	defer putScratch(sc)
	b := &sc.b
	b.addOwn(ctrl)
	if sub != nil {
		frames, err := sub.TryRead(sc.frames)
		if err != nil {
			rerr = err
		} else if coalesce != nil && audioOnly(frames) {
			frames = w.gatherAudio(sub, frames, coalesce)
			if ctx.Err() != nil {
				sc.frames = frames
				return sent, nil, nil
			}
		}
		sc.frames = frames
		cs := w.c.srv.cfg.ChunkSize
		for i := range frames {
			w.addFrame(b, cs, sid, &frames[i])
			frames[i].Packet = nil
			if b.size >= flushBytes {
				if err := w.write(b); err != nil {
					return true, nil, err
				}
				sent = true
				b.reset()
			}
		}
	}
	if b.size > 0 {
		if err := w.write(b); err != nil {
			return true, nil, err
		}
		sent = true
	}
	return sent, rerr, nil
}

// writeRestLocked writes what writeThrough left, waiting as long as the write
// deadline allows (plain TCP only). wmu must be held.
func (w *writer) writeRestLocked() error {
	if w.rest == nil {
		return nil
	}
	w.touchDeadline()
	n, err := w.c.raw.Writev(w.rest)
	w.bytesOut.Add(n)
	w.rest = nil
	putScratch(w.restSc)
	w.restSc = nil
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// writeThrough is relay.SubscribeOptions.WriteThrough for plain TCP players: the
// publisher's goroutine, right after queueing a packet for this idle player, takes it
// and writes it with one non-blocking writev, as an event loop would, instead of
// waking run. It never waits: when run holds the output, it leaves the packet to run
// (which looks at the queue again before it waits); what the socket does not take
// at once, an error, or pending replies are handed to run with Wake.
func (w *writer) writeThrough(sub *relay.Subscriber) {
	if !w.wmu.TryLock() {
		return
	}
	defer w.wmu.Unlock()
	d := w.direct.Load()
	if d == nil || d.sub != sub {
		return // play has not reached run yet (play wakes it) or has ended
	}
	if w.rest != nil || w.werr != nil || w.hasPending.Load() {
		sub.Wake()
		return
	}
	sc := getScratch()
	frames, err := sub.TryRead(sc.frames)
	sc.frames = frames
	if err != nil || len(frames) == 0 {
		putScratch(sc)
		if err != nil {
			sub.Wake() // run ends the play
		}
		return
	}
	if len(frames) == cap(frames) {
		sub.Wake() // there may be more: run takes them
	}
	b := &sc.b
	cs := w.c.srv.cfg.ChunkSize
	for i := range frames {
		w.addFrame(b, cs, d.sid, &frames[i])
		frames[i].Packet = nil
	}
	if b.size == 0 {
		putScratch(sc)
		return
	}
	w.touchDeadline()
	n, rest, err := w.c.raw.TryWritev(b.buffers())
	w.bytesOut.Add(n)
	switch {
	case err != nil:
		w.werr = fmt.Errorf("write: %w", err)
		putScratch(sc)
		sub.Wake()
	case rest != nil:
		w.rest, w.restSc = rest, sc // run writes the rest, then frees sc
		sub.Wake()
	default:
		putScratch(sc)
	}
}

// audioOnly reports whether frames hold audio and nothing else.
func audioOnly(frames []relay.Frame) bool {
	for _, f := range frames {
		if f.Packet.Kind != relay.KindAudio {
			return false
		}
	}
	return len(frames) > 0
}

// gatherAudio holds a batch of audio for up to Config.WriteCoalesce, adding what
// arrives meanwhile, and returns as soon as anything but audio arrives, the batch is
// full or the time is up. Audio comes about 43 times a second and video 25, so a player
// that writes audio on the next video frame (or after the wait) makes roughly half the
// write syscalls, at the price of that much added audio latency; video is never held.
func (w *writer) gatherAudio(sub *relay.Subscriber, frames []relay.Frame, timer *time.Timer) []relay.Frame {
	timer.Reset(w.c.srv.cfg.WriteCoalesce)
	defer timer.Stop()
	for audioOnly(frames) && len(frames) < cap(frames) {
		more, err := sub.Read(context.Background(), frames)
		if err != nil || len(more) == len(frames) {
			// An error sticks and comes back on the next Read; no new frames means the
			// timer (or the connection's end) woke us.
			return more
		}
		frames = more
	}
	return frames
}

func (w *writer) stillPlaying(sub *relay.Subscriber) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sub == sub
}

// endPlay tells the player why its stream ended, when it still can, and returns the
// reason the connection closes.
func (w *writer) endPlay(err error, sid uint32) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.werr != nil {
		return w.werr
	}
	// Finish the message writeThrough started, so the status follows whole chunks.
	if werr := w.writeRestLocked(); werr != nil {
		return fmt.Errorf("play: %w", err)
	}
	cs := w.c.srv.cfg.ChunkSize
	var buf []byte
	switch {
	case errors.Is(err, relay.ErrClosed):
		buf = appendStatus(buf, cs, sid, "status", "NetStream.Play.UnpublishNotify", "server shutting down")
		buf = appendStatus(buf, cs, sid, "status", "NetStream.Play.Stop", "server shutting down")
		buf = chunk.AppendMessage(buf, cs, csidControl, typeUserControl, 0, 0, append([]byte{0, userControlEOF}, be32(sid)...))
	case errors.Is(err, relay.ErrNoPublisher):
		buf = appendStatus(buf, cs, sid, "error", "NetStream.Play.StreamNotFound", "no publisher")
	default: // slow subscriber: its socket is full, nothing more can go out
		return fmt.Errorf("play: %w", err)
	}
	b := &batch{}
	b.addOwn(buf)
	_ = w.write(b)
	return fmt.Errorf("play: %w", err)
}

// addFrame adds one frame to the batch. Timestamps on the wire are 32-bit.
func (w *writer) addFrame(b *batch, cs, sid uint32, f *relay.Frame) {
	started := &w.started
	p := f.Packet
	ts := uint32(f.Timestamp)
	switch p.Kind {
	case relay.KindAudio:
		b.addMessage(p, cs, csidAudio, typeAudio, sid, ts)
	case relay.KindVideo:
		b.addMessage(p, cs, csidVideo, typeVideo, sid, ts)
	case relay.KindMetadata:
		b.addMessage(p, cs, csidData, typeDataAMF0, sid, ts)
	case relay.KindStreamStart:
		if *started {
			m := b.mark()
			b.own = chunk.AppendMessage(b.own, cs, csidControl, typeUserControl, 0, 0, append([]byte{0, userControlBegin}, be32(sid)...))
			b.own = appendStatus(b.own, cs, sid, "status", "NetStream.Play.PublishNotify", "publisher is back")
			b.ownSince(m)
		}
		*started = true
	case relay.KindStreamEnd:
		*started = true
		m := b.mark()
		b.own = appendStatus(b.own, cs, sid, "status", "NetStream.Play.UnpublishNotify", "publisher left")
		b.ownSince(m)
	}
}

func appendStatus(dst []byte, cs, sid uint32, level, code, desc string) []byte {
	return appendCommand(dst, cs, csidCommand, typeCommandAMF0, sid, "onStatus", float64(0), nil, status{level, code, desc})
}

// write sends a batch: with writev on TCP, so shared media bodies are not copied, and
// as one contiguous Write elsewhere (TLS records, RTMPT tunnels).
func (w *writer) write(b *batch) error {
	nc := w.c.nc
	w.touchDeadline()
	var (
		n   int64
		err error
	)
	if raw := w.c.raw; raw != nil {
		n, err = raw.Writev(b.buffers())
	} else if _, ok := nc.(*net.TCPConn); ok {
		iov := b.buffers()
		n, err = iov.WriteTo(nc)
	} else {
		w.flat = b.appendTo(w.flat[:0])
		var m int
		m, err = nc.Write(w.flat)
		n = int64(m)
	}
	w.bytesOut.Add(n)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// touchDeadline moves the write deadline only when less than half of WriteTimeout is
// left, not on every write: a player gets cut off after WriteTimeout/2 to WriteTimeout
// without progress, and the timer is touched a few times a second instead of per
// packet. wmu must be held.
func (w *writer) touchDeadline() {
	now := time.Now()
	if wt := w.c.srv.cfg.WriteTimeout; w.deadline.Sub(now) < wt/2 {
		w.deadline = now.Add(wt)
		w.c.nc.SetWriteDeadline(w.deadline)
	}
}
