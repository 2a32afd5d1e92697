package chunk

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// AppendMessage appends msg encoded as chunks of chunkSize to dst and returns the extended
// slice. The first chunk has a type 0 header, the rest type 3; when the timestamp is
// >= 0xFFFFFF the extended timestamp is written after every header, type 3 included, as
// ffmpeg and librtmp expect (RTMP 1.0 §5.3.1.3). A zero-length payload is one chunk
// made of the header alone. It does not allocate when dst has room.
//
// csid must be 2..65599, chunkSize >= 1 and len(payload) <= 0xFFFFFF (the 24-bit
// length field); AppendMessage panics otherwise, since those values come from
// the caller, never from a peer.
func AppendMessage(dst []byte, chunkSize uint32, csid uint32, typeID uint8, streamID uint32, timestamp uint32, payload []byte) []byte {
	checkArgs(chunkSize, csid, len(payload))
	dst = slices.Grow(dst, EncodedLen(chunkSize, csid, timestamp, len(payload)))

	extended := timestamp >= extendedMarker
	field := min(timestamp, extendedMarker)
	length := len(payload)

	// Type 0 header (§5.3.1.2.1): timestamp, length, type id, then the
	// message stream id in little-endian, the one little-endian field of RTMP.
	dst = appendBasicHeader(dst, 0, csid)
	dst = append(dst,
		byte(field>>16), byte(field>>8), byte(field),
		byte(length>>16), byte(length>>8), byte(length),
		typeID)
	dst = binary.LittleEndian.AppendUint32(dst, streamID)
	if extended {
		dst = binary.BigEndian.AppendUint32(dst, timestamp)
	}
	n := min(uint64(len(payload)), uint64(chunkSize))
	dst = append(dst, payload[:n]...)
	payload = payload[n:]

	// Continuation chunks: type 3, repeating the extended timestamp.
	for len(payload) > 0 {
		dst = appendBasicHeader(dst, 3, csid)
		if extended {
			dst = binary.BigEndian.AppendUint32(dst, timestamp)
		}
		n := min(uint64(len(payload)), uint64(chunkSize))
		dst = append(dst, payload[:n]...)
		payload = payload[n:]
	}
	return dst
}

// EncodedLen returns the number of bytes AppendMessage will append. It has
// the same preconditions on chunkSize and csid as AppendMessage.
func EncodedLen(chunkSize uint32, csid uint32, timestamp uint32, payloadLen int) int {
	checkArgs(chunkSize, csid, payloadLen)
	basic := basicHeaderLen(csid)
	ext := 0
	if timestamp >= extendedMarker {
		ext = 4
	}
	chunks := 1
	if payloadLen > 0 {
		chunks = int((uint64(payloadLen) + uint64(chunkSize) - 1) / uint64(chunkSize))
	}
	return basic + 11 + ext + (chunks-1)*(basic+ext) + payloadLen
}

// checkArgs panics on arguments AppendMessage cannot encode.
func checkArgs(chunkSize, csid uint32, payloadLen int) {
	if chunkSize == 0 {
		panic("chunk: chunk size 0")
	}
	if csid < MinCSID || csid > MaxCSID {
		panic(fmt.Sprintf("chunk: csid %d outside %d..%d", csid, MinCSID, MaxCSID))
	}
	if payloadLen < 0 || payloadLen > maxLength {
		panic(fmt.Sprintf("chunk: payload of %d bytes does not fit the 24-bit length", payloadLen))
	}
}

// basicHeaderLen returns the size of the shortest basic header for csid
// (RTMP 1.0 §5.3.1.1).
func basicHeaderLen(csid uint32) int {
	switch {
	case csid < 64:
		return 1
	case csid < 64+256:
		return 2
	default:
		return 3
	}
}

// appendBasicHeader appends the shortest basic header for fmt and csid
// (RTMP 1.0 §5.3.1.1).
func appendBasicHeader(dst []byte, fmt byte, csid uint32) []byte {
	switch {
	case csid < 64:
		return append(dst, fmt<<6|byte(csid))
	case csid < 64+256:
		return append(dst, fmt<<6, byte(csid-64))
	default:
		id := csid - 64
		return append(dst, fmt<<6|1, byte(id), byte(id>>8))
	}
}
