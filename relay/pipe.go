package relay

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Default limits of a Pipe.
const (
	DefaultPipePackets = 512
	DefaultPipeBytes   = 8 << 20
)

// pipeHub is the hub every Pipe's stream belongs to. Pipes are never entered in its
// map: it only gives their subscribers the limits, counters and logger a Subscriber
// expects. Created on first use.
var pipeHub = sync.OnceValue(func() *Hub {
	h, err := New(Config{}, zerolog.Nop())
	if err != nil {
		panic(err) // the zero Config is always valid
	}
	return h
})

// Pipe connects one writer to one Subscriber outside any Hub: a file being played
// back (VOD) to one player. The subscriber is an ordinary *Subscriber, so a protocol
// writer that plays hub streams plays a Pipe unchanged. Unlike a hub stream a Pipe:
//
//   - keeps the writer's timestamps (Frame.Timestamp = Packet.Timestamp), so a
//     player that seeks gets the file's own times;
//   - never drops: Full reports when the writer should wait instead (the writer
//     paces itself, e.g. at real time);
//   - has no GOP cache, no join logic and no stats in any Hub.
//
// Write, Full, Len, Flush and End may be called from any goroutine; Read, as with
// any Subscriber, from one.
type Pipe struct {
	sub        *Subscriber // immutable
	maxPackets int         // immutable
	maxBytes   int         // immutable
}

// PipeOptions tunes a Pipe. Zero values mean the defaults.
type PipeOptions struct {
	Subscribe SubscribeOptions // Protocol and Remote for logs; OnEvict is never called
	// MaxPackets and MaxBytes are where Full starts to report true; defaults
	// DefaultPipePackets and DefaultPipeBytes.
	MaxPackets int
	MaxBytes   int
}

// NewPipe returns an empty pipe.
func NewPipe(opts PipeOptions) *Pipe {
	h := pipeHub()
	st := newStream(h, "pipe/pipe")
	s := newSubscriber(st, opts.Subscribe, time.Now())
	s.startSessionLocked() // no PlayWait: a pipe's writer is there from the start
	st.subs = []*Subscriber{s}
	return &Pipe{
		sub:        s,
		maxPackets: pipeLimit(opts.MaxPackets, DefaultPipePackets),
		maxBytes:   pipeLimit(opts.MaxBytes, DefaultPipeBytes),
	}
}

func pipeLimit(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Subscriber returns the reading end. Closing it ends the pipe: Write returns ErrClosed.
func (p *Pipe) Subscriber() *Subscriber { return p.sub }

// Write queues pkt for the subscriber with pkt.Timestamp as its time. It never blocks
// and never drops; it returns the subscriber's error (ErrClosed, or what End set)
// once the pipe has ended. pkt must not change afterwards.
func (p *Pipe) Write(pkt *Packet) error {
	s := p.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.q.push(Frame{Packet: pkt, Timestamp: pkt.Timestamp})
	if s.q.n == 1 {
		s.signal() // Read waits only on an empty queue
	}
	return nil
}

// Full reports whether the queue holds MaxPackets or MaxBytes or more: the writer
// should wait for the reader before it writes again.
func (p *Pipe) Full() bool {
	s := p.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.n >= p.maxPackets || s.q.bytes >= p.maxBytes
}

// Len returns the number of queued frames: 0 once the reader took everything.
func (p *Pipe) Len() int {
	s := p.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.n
}

// Flush drops every queued frame (a seek) and returns how many.
func (p *Pipe) Flush() int {
	s := p.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.q.n
	for s.q.n > 0 {
		s.q.pop()
	}
	return n
}

// End ends the pipe with err: queued frames are dropped, Read returns err and Write
// returns it. Use it when the source failed or ended and nothing will be written
// again; a writer that may still write (a player that can seek back) leaves the
// pipe open instead. No-op once the pipe has ended.
func (p *Pipe) End(err error) {
	p.sub.end(err)
}
