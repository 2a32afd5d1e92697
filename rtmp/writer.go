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

// writer is the only goroutine that writes to a connection after the handshake. The
// reader queues control and command messages (already chunked) with enqueue; media
// comes from the relay subscriber. Everything gathered in one round goes out in one
// Write, so a player costs one syscall per batch, not per chunk (go-rtmp flushes
// every chunk).
type writer struct {
	c        *conn
	wake     chan struct{} // 1-buffered; signalled when pending grows or play starts/stops
	done     chan struct{} // closed by run when it returns
	err      error         // why run returned; written by run before done is closed
	bytesOut atomic.Int64

	mu      sync.Mutex
	pending []byte            // guarded by mu: chunked control messages to send
	sub     *relay.Subscriber // guarded by mu: the play subscriber, or nil
	sid     uint32            // guarded by mu: message stream id of the play
	key     string            // guarded by mu

	flat     []byte    // owned by run: a batch flattened for non-TCP connections
	deadline time.Time // owned by run: the write deadline set on the connection
}

func newWriter(c *conn) *writer {
	return &writer{c: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (w *writer) signal() {
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

// play hands a subscriber to the writer. Messages queued before stay ahead of its media.
func (w *writer) play(sub *relay.Subscriber, sid uint32, key string) {
	w.mu.Lock()
	w.sub, w.sid, w.key = sub, sid, key
	w.mu.Unlock()
	w.signal()
}

// stopPlay detaches the subscriber and returns what it delivered.
func (w *writer) stopPlay() relay.SubscriberStats {
	w.mu.Lock()
	sub := w.sub
	w.sub = nil
	w.mu.Unlock()
	var st relay.SubscriberStats
	if sub != nil {
		st = sub.Stats()
		sub.Close()
		sub.Wake()
	}
	w.signal()
	return st
}

// run writes until ctx is done or a write fails; on a failure it closes the connection
// so the reader ends too.
func (w *writer) run(ctx context.Context) {
	defer close(w.done)
	defer func() {
		if r := recover(); r != nil {
			w.err = fmt.Errorf("%w: writer panic: %v", errProtocol, r)
			w.c.log.Error().Str("panic", fmt.Sprint(r)).Msg("panic in writer")
		}
		w.c.nc.Close()
	}()
	w.err = w.loop(ctx)
}

func (w *writer) loop(ctx context.Context) error {
	var (
		b        = &batch{own: make([]byte, 0, 1<<10)}
		frames   = make([]relay.Frame, 0, 64)
		woken    *relay.Subscriber // the subscriber whose Read ctx cancellation wakes
		unwake   = func() bool { return false }
		coalesce *time.Timer // wakes woken after Config.WriteCoalesce; nil when off
		cs       = w.c.srv.cfg.ChunkSize
		started  bool // a KindStreamStart was seen
		spare    []byte
	)
	for {
		b.reset()
		w.mu.Lock()
		ctrl := w.pending
		w.pending = spare[:0]
		sub, sid := w.sub, w.sid
		w.mu.Unlock()
		b.addOwn(ctrl)
		spare = ctrl

		if sub != nil && len(ctrl) == 0 {
			if sub != woken {
				// Read without a cancellable context (a cheaper wait per packet); ctx's
				// end wakes it instead.
				unwake()
				unwake, woken = context.AfterFunc(ctx, sub.Wake), sub
				if coalesce != nil {
					coalesce.Stop()
				}
				if w.c.srv.cfg.WriteCoalesce > 0 {
					coalesce = time.AfterFunc(time.Hour, sub.Wake)
					coalesce.Stop()
				}
			}
			var err error
			frames, err = sub.Read(context.Background(), frames[:0])
			if err == nil && len(frames) == 0 && ctx.Err() != nil {
				err = ctx.Err()
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !w.stillPlaying(sub) {
					continue // stopPlay closed it
				}
				return w.endPlay(err, sid)
			}
			if coalesce != nil && audioOnly(frames) {
				frames = w.gatherAudio(sub, frames, coalesce)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			for i := range frames {
				w.addFrame(b, cs, sid, &frames[i], &started)
				frames[i].Packet = nil
				if b.size >= flushBytes {
					if err := w.write(b); err != nil {
						return err
					}
					b.reset()
				}
			}
		}
		if b.size > 0 {
			if err := w.write(b); err != nil {
				return err
			}
			continue
		}
		if sub == nil {
			select {
			case <-w.wake:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
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
func (w *writer) addFrame(b *batch, cs, sid uint32, f *relay.Frame, started *bool) {
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
	// Move the write deadline only when less than half of WriteTimeout is left, not on
	// every write: a player gets cut off after WriteTimeout/2 to WriteTimeout without
	// progress, and the timer is touched a few times a second instead of per packet.
	now := time.Now()
	if wt := w.c.srv.cfg.WriteTimeout; w.deadline.Sub(now) < wt/2 {
		w.deadline = now.Add(wt)
		nc.SetWriteDeadline(w.deadline)
	}
	var (
		n   int64
		err error
	)
	if _, ok := nc.(*net.TCPConn); ok {
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
