package chunk

// THIS FILE IS THE API CONTRACT written by the lead. The chunk helper implements it
// (splitting into reader.go, writer.go, header.go as it sees fit) keeping every exported
// name and signature below. Delete this comment when done.

import (
	"errors"
	"io"
)

// Sentinel errors of the chunk layer.
var (
	// ErrMessageTooLarge: a message header declares a length above the reader's limit.
	ErrMessageTooLarge = errors.New("chunk: message too large")
	// ErrBadChunkSize: SetChunkSize outside 1..0x7FFFFFFF (the reader also refuses
	// sizes above its MaxChunkSize).
	ErrBadChunkSize = errors.New("chunk: bad chunk size")
	// ErrNoPreviousHeader: a type 1/2/3 chunk on a chunk stream that never had a type 0.
	ErrNoPreviousHeader = errors.New("chunk: chunk without previous header")
	// ErrTooManyChunkStreams: the peer opened more chunk streams than the limit.
	ErrTooManyChunkStreams = errors.New("chunk: too many chunk streams")
)

// Protocol control message type IDs handled by the reader itself (RTMP 1.0 §5.4).
const (
	TypeSetChunkSize = 1
	TypeAbort        = 2
)

// Message is one reassembled RTMP message (RTMP 1.0 §6.1).
type Message struct {
	CSID      uint32 // chunk stream id it arrived on
	TypeID    uint8
	StreamID  uint32 // message stream id
	Timestamp uint32 // absolute timestamp (deltas already applied), 32-bit as on the wire
	Payload   []byte // freshly allocated for every message: the caller may keep and share it
}

// ReaderConfig limits what a peer can make the reader hold.
type ReaderConfig struct {
	MaxMessageSize  uint32 // default 8 MiB
	MaxChunkSize    uint32 // largest SetChunkSize accepted; default 16 MiB
	MaxChunkStreams int    // default 64
}

// Reader reassembles messages from a chunk stream (RTMP 1.0 §5.3). It handles all four
// header formats, extended timestamps on every format including type 3 (the go-rtmp bug),
// interleaved chunk streams, and applies SetChunkSize and Abort messages itself (they are
// still returned to the caller). Not safe for concurrent use.
type Reader struct{}

// NewReader reads chunks from r (the caller wraps r in a bufio.Reader if it wants buffering).
func NewReader(r io.Reader, cfg ReaderConfig) *Reader { panic("todo") }

// ReadMessage returns the next complete message. Errors are wrapped with context;
// io.EOF is returned as is when the stream ends cleanly between chunks, and
// io.ErrUnexpectedEOF inside a chunk.
func (r *Reader) ReadMessage() (*Message, error) { panic("todo") }

// BytesRead returns how many bytes were consumed so far (for Acknowledgement messages).
func (r *Reader) BytesRead() uint64 { panic("todo") }

// ChunkSize returns the peer's current chunk size (default 128).
func (r *Reader) ChunkSize() uint32 { panic("todo") }

// AppendMessage appends msg encoded as chunks of chunkSize to dst and returns the extended
// slice. The first chunk has a type 0 header, the rest type 3; when the timestamp is
// >= 0xFFFFFF the extended timestamp is written after every header, type 3 included, as
// ffmpeg and librtmp expect. It does not allocate when dst has room.
// csid must be 2..65599, chunkSize >= 1.
func AppendMessage(dst []byte, chunkSize uint32, csid uint32, typeID uint8, streamID uint32, timestamp uint32, payload []byte) []byte {
	panic("todo")
}

// EncodedLen returns the number of bytes AppendMessage will append.
func EncodedLen(chunkSize uint32, csid uint32, timestamp uint32, payloadLen int) int { panic("todo") }
