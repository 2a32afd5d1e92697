package rtmp

import (
	"encoding/binary"
	"net"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// rtmpEncoding is the slot where a media packet's chunked body is cached, so it is
// chunked once and the same bytes go to every player (see sharedBody).
var rtmpEncoding = relay.NewEncoding()

// sharedBody returns the packet's payload as it appears on the wire after the first
// chunk header: payload bytes with a one-byte type 3 header before every chunk after
// the first (RTMP 1.0 §5.3.1). It is the same for every player, since every player gets
// the same chunk size and chunk stream id for a kind of message and timestamps below
// 0xFFFFFF need no extended field on type 3 chunks; only the 12-byte type 0 header
// (timestamp, message stream id) is per player. A payload that fits one chunk is
// shared as is, with no copy.
func sharedBody(p *relay.Packet, cs, csid uint32) []byte {
	if uint32(len(p.Payload)) <= cs {
		return p.Payload
	}
	return p.Encoded(rtmpEncoding, func(p *relay.Packet) []byte {
		// csid < 64, so a type 3 basic header is one byte.
		n := len(p.Payload)
		out := make([]byte, 0, n+(n-1)/int(cs))
		for off := 0; off < n; off += int(cs) {
			if off > 0 {
				out = append(out, 0xC0|byte(csid))
			}
			out = append(out, p.Payload[off:min(off+int(cs), n)]...)
		}
		return out
	})
}

// appendHeader0 appends a type 0 chunk header (RTMP 1.0 §5.3.1.2.1) for a message that
// needs no extended timestamp (ts < 0xFFFFFF) on chunk stream csid < 64.
func appendHeader0(dst []byte, csid uint32, typeID uint8, sid, ts uint32, length int) []byte {
	dst = append(dst, byte(csid),
		byte(ts>>16), byte(ts>>8), byte(ts),
		byte(length>>16), byte(length>>8), byte(length),
		typeID)
	return binary.LittleEndian.AppendUint32(dst, sid)
}

// batch gathers what one write sends: bytes that belong to this connection (headers,
// control and status messages) and bytes shared with other players (chunked media
// bodies), in order, so a TCP player sends them with one writev and no copy.
type batch struct {
	own  []byte      // this connection's bytes; segs refer into it by offset
	segs []segment   // in wire order
	iov  net.Buffers // rebuilt by buffers
	size int         // bytes in the batch
}

// segment is a run of own[start:end], or shared bytes when shared is non-nil.
type segment struct {
	shared     []byte
	start, end int
}

func (b *batch) reset() {
	b.own = b.own[:0]
	clear(b.segs) // drop references to shared bodies
	b.segs = b.segs[:0]
	clear(b.iov)
	b.iov = b.iov[:0]
	b.size = 0
}

// mark returns the current end of own; after appending to own, ownSince records the
// bytes since the mark as a segment.
func (b *batch) mark() int { return len(b.own) }

func (b *batch) ownSince(start int) {
	end := len(b.own)
	if end == start {
		return
	}
	b.size += end - start
	if n := len(b.segs); n > 0 && b.segs[n-1].shared == nil && b.segs[n-1].end == start {
		b.segs[n-1].end = end // merge with the previous own run
		return
	}
	b.segs = append(b.segs, segment{start: start, end: end})
}

func (b *batch) addShared(p []byte) {
	if len(p) == 0 {
		return
	}
	b.size += len(p)
	b.segs = append(b.segs, segment{shared: p})
}

// addOwn appends p to own as a segment.
func (b *batch) addOwn(p []byte) {
	m := b.mark()
	b.own = append(b.own, p...)
	b.ownSince(m)
}

// addMessage appends one media or data message for a player: its per-player type 0
// header and the shared chunked body. Messages whose timestamp needs the extended field
// are chunked for this player alone.
func (b *batch) addMessage(p *relay.Packet, cs, csid uint32, typeID uint8, sid, ts uint32) {
	m := b.mark()
	if ts >= 0xFFFFFF {
		b.own = chunk.AppendMessage(b.own, cs, csid, typeID, sid, ts, p.Payload)
		b.ownSince(m)
		return
	}
	b.own = appendHeader0(b.own, csid, typeID, sid, ts, len(p.Payload))
	b.ownSince(m)
	b.addShared(sharedBody(p, cs, csid))
}

// buffers returns the batch as a net.Buffers for writev. The result is valid until the
// next reset.
func (b *batch) buffers() net.Buffers {
	b.iov = b.iov[:0]
	for _, s := range b.segs {
		if s.shared != nil {
			b.iov = append(b.iov, s.shared)
		} else {
			b.iov = append(b.iov, b.own[s.start:s.end])
		}
	}
	return b.iov
}

// appendTo appends the whole batch to dst, for connections that are not plain TCP
// (TLS, tunnels), where one contiguous write beats many small ones.
func (b *batch) appendTo(dst []byte) []byte {
	for _, s := range b.segs {
		if s.shared != nil {
			dst = append(dst, s.shared...)
		} else {
			dst = append(dst, b.own[s.start:s.end]...)
		}
	}
	return dst
}
