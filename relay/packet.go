package relay

import (
	"strconv"
	"sync/atomic"
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

// String returns the lower-case name of k, for logs and test failures.
func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	case KindMetadata:
		return "metadata"
	case KindStreamStart:
		return "stream-start"
	case KindStreamEnd:
		return "stream-end"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Packet is one media message. It is immutable once passed to Publisher.WritePacket
// and shared by pointer between all subscribers: nobody may modify Payload.
type Packet struct {
	Kind      Kind
	Timestamp int64 // decode time in ms, publisher's clock, already unwrapped to 64 bits
	Keyframe  bool  // video: a random access point
	SeqHeader bool  // audio/video: a codec configuration record (AVC/AAC sequence header)
	Payload   []byte

	enc encCache // outputs' shared encodings; see Encoded
}

// isMedia reports whether p is an audio or video frame, as opposed to a
// sequence header, metadata or an event. Only media may be dropped.
func (p *Packet) isMedia() bool {
	return (p.Kind == KindAudio || p.Kind == KindVideo) && !p.SeqHeader
}

// isVideoFrame reports whether p is a video frame (not a sequence header).
func (p *Packet) isVideoFrame() bool {
	return p.Kind == KindVideo && !p.SeqHeader
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

// Shared event packets: they carry no payload, so every subscriber gets the same pointer.
var (
	startPacket = &Packet{Kind: KindStreamStart}
	endPacket   = &Packet{Kind: KindStreamEnd}
)

// MaxEncodings is how many output formats may cache an encoding on a Packet.
const MaxEncodings = 4

// Encoding names one output format's cached encoding of packets (see Packet.Encoded).
// Outputs get one with NewEncoding, once, at package initialisation.
type Encoding uint8

var encodings atomic.Uint32

// NewEncoding reserves a cache slot on every Packet for one output format. It panics
// after MaxEncodings calls: slots are meant for package-level variables.
func NewEncoding() Encoding {
	n := encodings.Add(1)
	if n > MaxEncodings {
		panic("relay: more than MaxEncodings encodings")
	}
	return Encoding(n - 1)
}

// encCache holds a packet's cached encodings. The hub never reads them; it only gives
// each output a place to build its wire bytes once and share them between all of its
// subscribers.
type encCache [MaxEncodings]atomic.Pointer[[]byte]

// Encoded returns the bytes build makes from p for the output format e, calling build
// at most once per packet in the common case (two goroutines racing may both build; one
// result wins and is returned to both). The result must not be modified. build must
// depend only on p and on settings that are the same for every subscriber of e.
func (p *Packet) Encoded(e Encoding, build func(*Packet) []byte) []byte {
	if b := p.enc[e].Load(); b != nil {
		return *b
	}
	b := build(p)
	if p.enc[e].CompareAndSwap(nil, &b) {
		return b
	}
	return *p.enc[e].Load()
}
