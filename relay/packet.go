package relay

import "strconv"

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
