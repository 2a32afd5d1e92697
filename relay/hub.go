package relay

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Sentinel errors of the hub.
var (
	// ErrStreamBusy is returned by Publish when the key already has a publisher.
	ErrStreamBusy = errors.New("relay: stream already has a publisher")
	// ErrSlowSubscriber is returned by Subscriber.Read (and passed to OnEvict) after a
	// subscriber stayed behind for longer than Config.SlowGrace.
	ErrSlowSubscriber = errors.New("relay: subscriber too slow")
	// ErrNoPublisher is returned by Subscriber.Read when the stream had no publisher
	// for longer than Config.PlayWait (at start or after a publisher left).
	ErrNoPublisher = errors.New("relay: no publisher")
	// ErrClosed is returned after the hub, the subscriber or the publisher was closed.
	ErrClosed = errors.New("relay: closed")
	// ErrBadKey is returned for an empty or malformed stream key.
	ErrBadKey = errors.New("relay: bad stream key")
)

// Config tunes the hub. A zero value means the documented default; negative values
// are rejected by New.
type Config struct {
	QueuePackets  int           // per-subscriber queue capacity in packets; default 2048
	QueueBytes    int           // per-subscriber queued payload bytes; default 16 MiB
	QueueDuration time.Duration // per-subscriber queued media duration; default 10s
	SlowGrace     time.Duration // how long a subscriber may stay behind before eviction; default 10s
	GOPFrames     int           // GOP cache cap in packets (audio+video); default 2048
	GOPBytes      int           // GOP cache cap in bytes; default 16 MiB
	PlayWait      time.Duration // how long a subscriber waits for a publisher; default 30s
}

// Defaults of Config, applied by New to zero fields.
const (
	DefaultQueuePackets  = 2048
	DefaultQueueBytes    = 16 << 20
	DefaultQueueDuration = 10 * time.Second
	DefaultSlowGrace     = 10 * time.Second
	DefaultGOPFrames     = 2048
	DefaultGOPBytes      = 16 << 20
	DefaultPlayWait      = 30 * time.Second
)

// withDefaults validates c and fills its zero fields. The error names the field at fault.
func (c Config) withDefaults() (Config, error) {
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"QueuePackets", &c.QueuePackets, DefaultQueuePackets},
		{"QueueBytes", &c.QueueBytes, DefaultQueueBytes},
		{"GOPFrames", &c.GOPFrames, DefaultGOPFrames},
		{"GOPBytes", &c.GOPBytes, DefaultGOPBytes},
	}
	for _, f := range ints {
		switch {
		case *f.v < 0:
			return c, fmt.Errorf("relay: Config.%s is negative (%d)", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"QueueDuration", &c.QueueDuration, DefaultQueueDuration},
		{"SlowGrace", &c.SlowGrace, DefaultSlowGrace},
		{"PlayWait", &c.PlayWait, DefaultPlayWait},
	}
	for _, f := range durs {
		switch {
		case *f.v < 0:
			return c, fmt.Errorf("relay: Config.%s is negative (%v)", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return c, nil
}

// Hub maps stream keys ("app/stream") to streams. Safe for concurrent use.
//
// Hub.mu is taken to create, find and remove streams (Publish, Subscribe, Close of
// publishers and subscribers, stats), never by Publisher.WritePacket's fast path.
type Hub struct {
	lim atomic.Pointer[hubLimits] // never nil after New; replaced by SetLimits (limits.go)
	log zerolog.Logger            // immutable after New; component=relay

	mu      sync.Mutex
	streams map[string]*stream // guarded by mu; a stream is here while it has a publisher or subscribers
	closed  bool               // guarded by mu
	tot     hubTotals          // cumulative counters for Stats
	ends    endCounts          // ended subscribers by protocol and reason (ends.go)
	events  events             // publish listeners (events.go); not guarded by mu
}

// New returns a hub. It fails if a Config field is negative.
func New(cfg Config, log zerolog.Logger) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{
		log:     log.With().Str("component", "relay").Logger(),
		streams: make(map[string]*stream),
	}
	h.lim.Store(newHubLimits(cfg))
	return h, nil
}

// Close ends every publisher and subscriber: Read returns ErrClosed, Publish and
// Subscribe return ErrClosed, and WritePacket of existing publishers does nothing.
// Each subscriber's OnEvict is called with ErrClosed, so that a writer blocked on
// its connection returns. Idempotent.
func (h *Hub) Close() {
	var ended []*Subscriber
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.ends.shutdown.Store(true)
	streams := h.streams
	h.streams = nil
	for _, st := range streams {
		st.mu.Lock()
		if st.pub != nil {
			st.pub = nil
			st.resetSession()
		}
		for _, s := range st.subs {
			if s.end(ErrClosed) {
				ended = append(ended, s)
			}
		}
		h.tot.foldLocked(st) // after the ends: their queues are released, their bytes final
		st.subs = nil
		st.dead = true
		st.mu.Unlock()
	}
	h.mu.Unlock()

	h.log.Debug().Int("streams", len(streams)).Int("subscribers", len(ended)).Msg("hub closed")
	for _, s := range ended {
		if s.opts.OnEvict != nil {
			s.opts.OnEvict(ErrClosed)
		}
	}
}

// streamLocked returns the stream for key, creating it. h.mu must be held and the
// hub must be open.
func (h *Hub) streamLocked(key string) *stream {
	st := h.streams[key]
	if st == nil {
		st = newStream(h, key)
		h.streams[key] = st
	}
	return st
}

// removeIfIdleLocked drops st from the map once it has neither publisher nor
// subscribers. h.mu and st.mu (write) must be held.
func (h *Hub) removeIfIdleLocked(st *stream) {
	if st.pub == nil && len(st.subs) == 0 && !st.dead {
		st.dead = true
		if h.streams[st.key] == st {
			delete(h.streams, st.key)
			h.tot.foldLocked(st)
		}
		st.log.Debug().Msg("stream removed")
	}
}

// Publish makes the caller the publisher of key. ErrStreamBusy if it has one;
// the existing publisher and its subscribers are untouched. ErrBadKey if key fails
// ValidateKey, ErrClosed after Close.
func (h *Hub) Publish(key string, info PublisherInfo) (*Publisher, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("relay publish %q: %w", key, err)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	st := h.streamLocked(key)
	p, evicted, err := st.publish(info)
	h.mu.Unlock()
	if err != nil {
		st.log.Debug().Str("protocol", info.Protocol).Str("remote", info.Remote).Msg("publish refused: busy")
		return nil, fmt.Errorf("relay publish %s: %w", key, err)
	}
	st.log.Info().Str("protocol", info.Protocol).Str("remote", info.Remote).Msg("publisher started")
	st.finishEvictions(evicted, ErrSlowSubscriber)
	h.events.published(key, info) // events.go: listeners see the publish before its first packet
	return p, nil
}

// Subscribe attaches a subscriber to key, creating the stream entry if needed.
// It does not wait: Read blocks until there is something to deliver. ErrBadKey if
// key fails ValidateKey, ErrClosed after Close.
func (h *Hub) Subscribe(key string, opts SubscribeOptions) (*Subscriber, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("relay subscribe %q: %w", key, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	return h.streamLocked(key).subscribe(opts), nil
}

// Streams returns stats for every stream with a publisher or subscribers, sorted by key.
func (h *Hub) Streams() []StreamStats {
	h.mu.Lock()
	list := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		list = append(list, st)
	}
	h.mu.Unlock()

	sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	now := time.Now()
	out := make([]StreamStats, 0, len(list))
	for _, st := range list {
		out = append(out, st.stats(now))
	}
	return out
}

// Stream returns the stats of one stream; false if the hub has no entry for key.
func (h *Hub) Stream(key string) (StreamStats, bool) {
	h.mu.Lock()
	st := h.streams[key]
	h.mu.Unlock()
	if st == nil {
		return StreamStats{}, false
	}
	return st.stats(time.Now()), true
}
