package relay

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// PublisherInfo describes a publisher for stats and logs.
type PublisherInfo struct {
	Protocol string // "rtmp", "rtmpt", ...
	Remote   string // remote address
	Query    string // the raw query string given after '?', kept for auth; never logged
	// Mode is the publish type the client asked for: "live", "record" or "append"
	// (RTMP's publish command's second argument, RTMP 1.0 §7.2.2.6), as sent; empty
	// when the protocol has none. The hub does not act on it; OnPublish listeners
	// (a recorder) do.
	Mode string
	// Owner is who answers for this publish (the role owning the stream key, from
	// AccessDecision.Owner); empty when publishing is open. Hub.Kick shows it to its
	// permission check.
	Owner string
	// Kick, when not nil, disconnects the publisher's connection; Hub.Kick calls it
	// once, without holding hub locks. It must not block.
	Kick func()
	// OnClose, when not nil, is called once, the first time Publisher.Close runs
	// (directly or through Hub.Kick; after Hub.Close the protocol layer still closes
	// its publisher), without holding hub locks, from the goroutine calling Close. It
	// must not block: e.g. it hands the end of a publish to a log writer that owns
	// its own goroutine.
	OnClose func()
}

// stream is one key's entry in the hub: the current publisher, the subscribers and
// what a new subscriber needs for an instant start.
type stream struct {
	hub *Hub           // immutable
	key string         // immutable
	log zerolog.Logger // immutable; component=relay, stream=key

	// mu's write lock is taken to change pub or subs; Publisher.WritePacket holds the
	// read lock while it pushes to each subscriber.
	mu   sync.RWMutex
	pub  *Publisher    // guarded by mu
	subs []*Subscriber // guarded by mu
	dead bool          // guarded by hub.mu and mu; set once the hub dropped this entry

	// The current publisher's session: what a joining subscriber gets before live
	// packets. Written by the publisher's goroutine while it holds mu for reading (it
	// is the only writer), or by anyone holding mu for writing; read with mu held for
	// writing (join). Stats never read these.
	meta     *Packet // latest metadata
	videoSeq *Packet // latest video sequence header
	audioSeq *Packet // latest audio sequence header
	gop      gop

	bytesIn      atomic.Int64 // payload bytes written by publishers
	bytesOutGone atomic.Int64 // bytes read by subscribers that left; the others count their own
	dropped      atomic.Int64 // frames dropped on overflow, all subscribers
	evicted      atomic.Int64 // subscribers evicted (slow or no publisher)

	statMu sync.Mutex // taken after mu when both are held
	media  MediaInfo  // guarded by statMu
	meter  meter      // guarded by statMu
}

func newStream(h *Hub, key string) *stream {
	return &stream{
		hub: h,
		key: key,
		log: h.log.With().Str("stream", key).Logger(),
	}
}

// resetSession forgets the publisher's metadata, sequence headers and GOP.
// mu must be held for writing.
func (st *stream) resetSession() {
	st.meta, st.videoSeq, st.audioSeq = nil, nil, nil
	st.gop.reset()
}

// publish installs a new publisher. hub.mu must be held; the returned subscribers
// were evicted on the way and must go through finishEvictions without locks.
func (st *stream) publish(info PublisherInfo) (*Publisher, []*Subscriber, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pub != nil {
		return nil, nil, ErrStreamBusy
	}
	now := time.Now()
	p := &Publisher{st: st, info: info, since: now, startIn: st.bytesIn.Load(), nextSample: now.Add(time.Second)}
	st.pub = p
	st.resetSession()
	st.clearKickedLocked() // ends.go: a new publisher, its subscribers play again
	var evicted []*Subscriber
	for _, s := range st.subs {
		if s.sessionStart(now) {
			evicted = append(evicted, s)
		}
	}
	st.statMu.Lock()
	st.media = MediaInfo{}
	st.meter.reset(now, st.bytesIn.Load(), st.bytesOutLocked())
	st.statMu.Unlock()
	return p, evicted, nil
}

// subscribe attaches a new subscriber. hub.mu must be held.
func (st *stream) subscribe(opts SubscribeOptions) *Subscriber {
	now := time.Now()
	s := newSubscriber(st, opts, now)
	st.mu.Lock()
	s.mu.Lock()
	if st.pub != nil {
		st.joinLocked(s)
	} else {
		s.deadline = now.Add(s.lim.playWait)
		s.wait = waitStart
	}
	s.mu.Unlock()
	st.subs = append(st.subs, s)
	live := st.pub != nil
	st.mu.Unlock()
	st.log.Debug().Str("protocol", opts.Protocol).Str("remote", opts.Remote).Bool("live", live).Msg("subscriber joined")
	return s
}

// joinLocked queues the instant-start frames for a subscriber joining a live
// stream: KindStreamStart, metadata, sequence headers, then the cached GOP if it
// fits in the subscriber's limits (otherwise video waits for the next keyframe).
// st.mu must be held for writing and s.mu held; s's queue is empty.
func (st *stream) joinLocked(s *Subscriber) {
	s.startSessionLocked()
	s.q.push(Frame{Packet: startPacket, Timestamp: s.rebase(startPacket)})
	for _, p := range [...]*Packet{st.meta, st.videoSeq, st.audioSeq} {
		if p != nil {
			s.q.push(Frame{Packet: p, Timestamp: s.rebase(p)})
		}
	}
	g := &st.gop
	if !g.valid || s.q.n+len(g.pkts) > s.lim.packets || s.q.bytes+g.bytes > s.lim.bytes ||
		g.span() > s.lim.durMS {
		return // s.wait stays waitStart: video starts at the next keyframe
	}
	for _, p := range g.pkts {
		s.q.push(Frame{Packet: p, Timestamp: s.rebase(p)})
	}
	s.wait = waitNone
}

// record updates the session state with a packet from the publisher. Called by the
// publisher's goroutine with mu held for reading.
func (st *stream) record(p *Packet) {
	switch {
	case p.Kind == KindMetadata:
		st.meta = p
	case p.SeqHeader:
		slot := &st.audioSeq
		if p.Kind == KindVideo {
			slot = &st.videoSeq
		}
		if old := *slot; old != nil && !bytes.Equal(old.Payload, p.Payload) {
			// The codec configuration changed: cached frames may not decode with the
			// new one, so new subscribers wait for the next keyframe.
			st.gop.reset()
		}
		*slot = p
	default:
		lim := &st.hub.lim.Load().cfg // SetLimits applies to the next frame
		st.gop.add(p, lim.GOPFrames, lim.GOPBytes)
	}
}

// bytesOutLocked sums what subscribers read. mu must be held (read or write).
func (st *stream) bytesOutLocked() int64 {
	n := st.bytesOutGone.Load()
	for _, s := range st.subs {
		n += s.bytes.Load()
	}
	return n
}

// removeSub detaches s from st (and st from the hub when idle). It reports
// whether s was still attached. No locks may be held.
func (st *stream) removeSub(s *Subscriber) bool {
	h := st.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	i := slices.Index(st.subs, s)
	if i < 0 {
		return false
	}
	st.subs = slices.Delete(st.subs, i, i+1)
	st.bytesOutGone.Add(s.bytes.Load())
	h.removeIfIdleLocked(st)
	return true
}

// finishEvictions detaches subscribers that were ended with err, logs the reason
// and calls their OnEvict. No locks may be held: OnEvict runs here.
func (st *stream) finishEvictions(list []*Subscriber, err error) {
	for _, s := range list {
		// Count before removing: removing the last subscriber of a stream without a
		// publisher drops the stream, and its counters fold into the hub's then.
		st.evicted.Add(1)
		st.removeSub(s)
		ev := st.log.Info()
		if err == ErrSlowSubscriber {
			ev = st.log.Warn()
		}
		ss := s.Stats()
		ev.Err(err).Str("protocol", s.opts.Protocol).Str("remote", s.opts.Remote).
			Int64("packets", ss.Packets).Int64("dropped", ss.Dropped).Msg("subscriber evicted")
		if s.opts.OnEvict != nil {
			s.opts.OnEvict(err)
		}
	}
}

// Publisher is the single writer of a stream. Its methods are called from one goroutine.
type Publisher struct {
	st      *stream       // immutable
	info    PublisherInfo // immutable
	since   time.Time     // immutable
	startIn int64         // immutable; stream.bytesIn when this publisher started
	closed  atomic.Bool   // set by the first Close, which calls info.OnClose

	// Owned by the publisher's goroutine (WritePacket).
	evicted    []*Subscriber // scratch, reused so that WritePacket does not allocate
	direct     []*Subscriber // subscribers whose WriteThrough is owed (see Flush)
	deferred   bool          // Flush was called: WritePacket leaves direct to Flush
	heldSince  time.Time     // when direct became non-empty
	onlyAudio  bool          // every packet published since heldSince is audio
	hold       time.Duration // the longest hold FlushHoldingAudio asked for
	nextSample time.Time     // when WritePacket next feeds the bitrate meter
}

// WritePacket publishes p. It never blocks on a subscriber: it queues p for each one,
// and for idle subscribers with SubscribeOptions.WriteThrough it makes that call
// (see Flush) after releasing the stream's locks. p must not change afterwards.
// Only KindAudio, KindVideo and KindMetadata are accepted; other kinds, a nil packet
// and packets written after Close are ignored.
func (p *Publisher) WritePacket(pkt *Packet) {
	if pkt == nil {
		return
	}
	switch pkt.Kind {
	case KindAudio, KindVideo, KindMetadata:
	default:
		return
	}
	st := p.st
	now := time.Now()
	st.mu.RLock()
	if st.pub != p {
		st.mu.RUnlock()
		return
	}
	st.bytesIn.Add(int64(len(pkt.Payload)))
	st.record(pkt)
	ev, direct := p.evicted[:0], p.direct
	for _, s := range st.subs {
		evict, d := s.push(pkt, now)
		if evict {
			ev = append(ev, s)
		}
		if d {
			direct = append(direct, s)
		}
	}
	if !now.Before(p.nextSample) {
		p.nextSample = now.Add(time.Second)
		out := st.bytesOutLocked()
		st.statMu.Lock()
		st.meter.add(now, st.bytesIn.Load(), out)
		st.statMu.Unlock()
	}
	st.mu.RUnlock()
	if len(ev) > 0 {
		st.finishEvictions(ev, ErrSlowSubscriber)
		clear(ev)
	}
	p.evicted = ev[:0]
	if len(direct) > 0 && len(p.direct) == 0 {
		p.heldSince, p.onlyAudio = now, true
	}
	if pkt.Kind != KindAudio {
		p.onlyAudio = false
	}
	p.direct = direct
	if !p.deferred || now.Sub(p.heldSince) >= max(maxHold, p.hold) {
		p.flush()
	}
}

// maxHold bounds how long WritePacket leaves WriteThrough calls to Flush.
const maxHold = 10 * time.Millisecond

// FlushHoldingAudio is Flush, except that when only audio was published since the
// calls became owed, less than hold ago, it leaves them owed: the next video packet,
// or the first Flush or WritePacket after hold, sends the audio with it. Audio comes
// about 43 times a second and video 25, so a subscriber then gets about half the
// writes (fewer system calls per player, like SRS's merged writes), at the price of up
// to hold of added audio latency; video is never held. If the publisher sends
// nothing more, held audio waits for its next packet or Close.
func (p *Publisher) FlushHoldingAudio(hold time.Duration) {
	p.deferred, p.hold = true, max(p.hold, hold)
	if p.onlyAudio && len(p.direct) > 0 && time.Since(p.heldSince) < hold {
		return
	}
	p.flush()
}

// Flush makes the SubscribeOptions.WriteThrough calls that WritePacket owes. After a
// publisher's first Flush, WritePacket leaves them to the next Flush (for at most
// 10 ms): a publisher that knows when its input runs dry (the RTMP server calls Flush
// when reading would block) then sends every packet that arrived together to each
// idle subscriber in one write. A publisher that never calls Flush needs not: until
// then WritePacket makes the calls itself.
func (p *Publisher) Flush() {
	p.deferred = true
	p.flush()
}

func (p *Publisher) flush() {
	direct := p.direct
	for _, s := range direct {
		s.opts.WriteThrough(s)
	}
	clear(direct)
	p.direct = direct[:0]
}

// SetMediaInfo records what is known about the media (for stats). Non-zero fields
// replace earlier values.
func (p *Publisher) SetMediaInfo(mi MediaInfo) {
	st := p.st
	st.statMu.Lock()
	st.media.merge(mi)
	st.statMu.Unlock()
}

// Close unpublishes: subscribers get KindStreamEnd and stay attached. The first call
// runs PublisherInfo.OnClose at the end. Idempotent. Like WritePacket and Flush, it
// is called by the publishing goroutine (Hub.Kick, from any goroutine, closes
// without touching the publishing goroutine's state).
func (p *Publisher) Close() { p.close(true) }

// close is Close; flushOwed says whether the caller owns the publisher's owed
// WriteThrough calls (the publishing goroutine) and makes them first. Another
// goroutine leaves them: the subscribers' ends wake their writers, which send
// whatever is queued.
func (p *Publisher) close(flushOwed bool) {
	if p.closed.Swap(true) {
		return
	}
	if p.info.OnClose != nil {
		defer p.info.OnClose()
	}
	if flushOwed {
		p.flush()
	}
	p.unpublish()
}

// unpublish detaches p from its stream unless the hub already did (Hub.Close).
func (p *Publisher) unpublish() {
	st := p.st
	h := st.hub
	now := time.Now()
	var evicted []*Subscriber
	h.mu.Lock()
	st.mu.Lock()
	if st.pub != p {
		st.mu.Unlock()
		h.mu.Unlock()
		return
	}
	st.pub = nil
	st.resetSession()
	for _, s := range st.subs {
		if s.sessionEnd(now) {
			evicted = append(evicted, s)
		}
	}
	nsubs := len(st.subs)
	h.removeIfIdleLocked(st)
	st.mu.Unlock()
	h.mu.Unlock()

	st.log.Info().Str("protocol", p.info.Protocol).Str("remote", p.info.Remote).
		Dur("duration", now.Sub(p.since)).Int64("bytes_in", st.bytesIn.Load()-p.startIn).
		Int("subscribers", nsubs).Msg("publisher left")
	st.finishEvictions(evicted, ErrSlowSubscriber)
}
