package relay

// THIS FILE IS THE API CONTRACT written by the lead. The relay helper implements it
// (and may split it into hub.go, stream.go, subscriber.go, packet.go, gop.go, stats.go),
// keeping every exported name and signature below. Delete this comment when done.

import (
	"context"
	"errors"
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

// Kind says what a Packet carries.
type Kind uint8

// Packet kinds. Audio/Video/Metadata carry an opaque payload; the two events carry none.
const (
	KindAudio    Kind = iota + 1 // codec payload, opaque to the hub
	KindVideo                    // codec payload, opaque to the hub
	KindMetadata                 // stream metadata, opaque to the hub (RTMP: AMF0 "onMetaData", array)
	// KindStreamStart is delivered to a subscriber when a publisher (re)appears, before
	// that publisher's metadata, sequence headers and cached GOP.
	KindStreamStart
	// KindStreamEnd is delivered to a subscriber when the publisher leaves. The
	// subscriber stays attached and waits for the next publisher.
	KindStreamEnd
)

// Packet is one media message. It is immutable once passed to Publisher.WritePacket
// and shared by pointer between all subscribers: nobody may modify Payload.
type Packet struct {
	Kind      Kind
	Timestamp int64 // decode time in ms, publisher's clock, already unwrapped to 64 bits
	Keyframe  bool  // video: a random access point
	SeqHeader bool  // audio/video: a codec configuration record (AVC/AAC sequence header)
	Payload   []byte
}

// Frame is a packet as one subscriber sees it.
type Frame struct {
	Packet *Packet
	// Timestamp is the packet's time rebased for this subscriber: monotonic
	// (non-decreasing), starting near 0 at its join, continuing across publisher
	// reconnects. Metadata and sequence headers sent at join carry the time of the
	// media that follows them.
	Timestamp int64
}

// Config tunes the hub. A zero value means the documented default.
type Config struct {
	QueuePackets  int           // per-subscriber queue capacity in packets; default 2048
	QueueBytes    int           // per-subscriber queued payload bytes; default 16 MiB
	QueueDuration time.Duration // per-subscriber queued media duration; default 10s
	SlowGrace     time.Duration // how long a subscriber may stay behind before eviction; default 10s
	GOPFrames     int           // GOP cache cap in packets (audio+video); default 2048
	GOPBytes      int           // GOP cache cap in bytes; default 16 MiB
	PlayWait      time.Duration // how long a subscriber waits for a publisher; default 30s
}

// MediaInfo is what the protocol layer learned about the published media.
// Zero fields are unknown.
type MediaInfo struct {
	VideoCodec string  `json:"video_codec,omitempty"` // e.g. "H264"
	AudioCodec string  `json:"audio_codec,omitempty"` // e.g. "AAC"
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
}

// PublisherInfo describes a publisher for stats and logs.
type PublisherInfo struct {
	Protocol string // "rtmp", "rtmpt", ...
	Remote   string // remote address
	Query    string // the raw query string given after '?', kept for auth
}

// SubscribeOptions describes a subscriber.
type SubscribeOptions struct {
	Protocol string // "rtmp", "rtmpt", "http-flv", ...
	Remote   string
	// OnEvict, if set, is called at most once, without hub locks held, when the hub
	// evicts the subscriber (ErrSlowSubscriber, ErrNoPublisher). It must not block;
	// typically it closes the connection so a writer blocked in Write returns.
	OnEvict func(err error)
}

// Hub maps stream keys ("app/stream") to streams. Safe for concurrent use.
type Hub struct{}

// New returns a hub.
func New(cfg Config, log zerolog.Logger) (*Hub, error) { panic("todo") }

// Close ends every publisher and subscriber: Read returns ErrClosed.
func (h *Hub) Close() { panic("todo") }

// Key returns the stream key for app and a stream name that may carry a query
// ("mystream?key=K"): it returns "app/mystream" and the query "key=K".
func Key(app, name string) (key, query string) { panic("todo") }

// Publish makes the caller the publisher of key. ErrStreamBusy if it has one;
// the existing publisher and its subscribers are untouched.
func (h *Hub) Publish(key string, info PublisherInfo) (*Publisher, error) { panic("todo") }

// Subscribe attaches a subscriber to key, creating the stream entry if needed.
// It does not wait: Read blocks until there is something to deliver.
func (h *Hub) Subscribe(key string, opts SubscribeOptions) (*Subscriber, error) { panic("todo") }

// Streams returns stats for every stream with a publisher or subscribers, sorted by key.
func (h *Hub) Streams() []StreamStats { panic("todo") }

// Stream returns the stats of one stream.
func (h *Hub) Stream(key string) (StreamStats, bool) { panic("todo") }

// Publisher is the single writer of a stream. Its methods are called from one goroutine.
type Publisher struct{}

// WritePacket publishes p. It never blocks on a subscriber. p must not change afterwards.
func (p *Publisher) WritePacket(pkt *Packet) { panic("todo") }

// SetMediaInfo records what is known about the media (for stats). Non-zero fields
// replace earlier values.
func (p *Publisher) SetMediaInfo(mi MediaInfo) { panic("todo") }

// Close unpublishes: subscribers get KindStreamEnd and stay attached. Idempotent.
func (p *Publisher) Close() { panic("todo") }

// Subscriber receives a stream's packets through a bounded queue.
type Subscriber struct{}

// Read blocks until at least one frame is queued, then appends up to cap(dst)-len(dst)
// frames to dst and returns it. A new subscriber first gets KindStreamStart (if a publisher
// is live), then the latest metadata, video and audio sequence headers, then the cached GOP
// from its last keyframe, then live packets; the first video frame is always a keyframe.
// Errors: ctx.Err(), ErrSlowSubscriber, ErrNoPublisher, ErrClosed.
func (s *Subscriber) Read(ctx context.Context, dst []Frame) ([]Frame, error) { panic("todo") }

// Close detaches the subscriber. Idempotent.
func (s *Subscriber) Close() { panic("todo") }

// Stats returns this subscriber's counters.
func (s *Subscriber) Stats() SubscriberStats { panic("todo") }

// SubscriberStats counts what happened to one subscriber.
type SubscriberStats struct {
	Packets int64 `json:"packets"` // delivered by Read
	Bytes   int64 `json:"bytes"`   // payload bytes delivered by Read
	Dropped int64 `json:"dropped"` // packets dropped on overflow
}

// StreamStats is a snapshot of one stream, served as JSON by /api/streams.
type StreamStats struct {
	Key         string         `json:"key"`
	Live        bool           `json:"live"`
	Publisher   *PublisherStat `json:"publisher,omitempty"`
	Media       MediaInfo      `json:"media"`
	BitrateIn   int64          `json:"bitrate_in_bps"`  // payload bits/s over the last ~5 s
	BitrateOut  int64          `json:"bitrate_out_bps"` // all subscribers' payload bits/s over the last ~5 s
	BytesIn     int64          `json:"bytes_in"`
	BytesOut    int64          `json:"bytes_out"`
	Subscribers map[string]int `json:"subscribers"` // by protocol
	Dropped     int64          `json:"dropped_packets"`
	Evicted     int64          `json:"evicted_subscribers"`
	UptimeSec   float64        `json:"uptime_seconds"` // of the current publisher
}

// PublisherStat describes the current publisher.
type PublisherStat struct {
	Protocol string    `json:"protocol"`
	Remote   string    `json:"remote"`
	Since    time.Time `json:"since"`
}
