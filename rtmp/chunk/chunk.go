package chunk

import "errors"

// Sentinel errors of the chunk layer. Errors returned by [Reader.ReadMessage]
// wrap them with the chunk stream id and the values at fault; match them with
// errors.Is.
var (
	// ErrMessageTooLarge is returned when a message header declares a length
	// above ReaderConfig.MaxMessageSize.
	ErrMessageTooLarge = errors.New("chunk: message too large")
	// ErrBadChunkSize is returned for a Set Chunk Size message outside
	// 1..0x7FFFFFFF (RTMP 1.0 §5.4.1) or above ReaderConfig.MaxChunkSize.
	ErrBadChunkSize = errors.New("chunk: bad chunk size")
	// ErrNoPreviousHeader is returned for a type 1, 2 or 3 chunk on a chunk
	// stream that never had a type 0 chunk.
	ErrNoPreviousHeader = errors.New("chunk: chunk without previous header")
	// ErrTooManyChunkStreams is returned when the peer uses more distinct chunk
	// stream ids than ReaderConfig.MaxChunkStreams.
	ErrTooManyChunkStreams = errors.New("chunk: too many chunk streams")
	// ErrShortControlMessage is returned for a Set Chunk Size or Abort message
	// whose payload is shorter than the 4 bytes RTMP 1.0 §5.4 requires.
	ErrShortControlMessage = errors.New("chunk: control message too short")
)

// Protocol control message type IDs handled by the reader itself (RTMP 1.0 §5.4).
const (
	// TypeSetChunkSize is Set Chunk Size (§5.4.1): the payload is the new
	// maximum chunk size as a 32-bit big-endian integer with the top bit zero.
	TypeSetChunkSize = 1
	// TypeAbort is Abort Message (§5.4.2): the payload is the 32-bit
	// big-endian id of the chunk stream whose partial message is discarded.
	TypeAbort = 2
)

// Limits of the wire format.
const (
	// DefaultChunkSize is the chunk size both sides use until a Set Chunk Size
	// message arrives (RTMP 1.0 §5.4.1).
	DefaultChunkSize = 128
	// MaxCSID is the largest chunk stream id a basic header can carry
	// (RTMP 1.0 §5.3.1.1: 65535 + 64).
	MaxCSID = 65599
	// MinCSID is the smallest chunk stream id a basic header can carry; ids 0
	// and 1 mark the 2- and 3-byte basic header forms.
	MinCSID = 2
	// maxLength is the largest message length the 24-bit field can carry.
	maxLength = 0xFFFFFF
	// extendedMarker in a 24-bit timestamp field means "read the 4-byte
	// extended timestamp" (RTMP 1.0 §5.3.1.3).
	extendedMarker = 0xFFFFFF
)

// Message is one reassembled RTMP message (RTMP 1.0 §6.1).
type Message struct {
	CSID      uint32 // chunk stream id it arrived on
	TypeID    uint8
	StreamID  uint32 // message stream id
	Timestamp uint32 // absolute timestamp (deltas already applied), 32-bit as on the wire
	Payload   []byte // freshly allocated for every message: the caller may keep and share it
}
