package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Defaults of ReaderConfig.
const (
	// DefaultMaxMessageSize is the default ReaderConfig.MaxMessageSize: 8 MiB,
	// far above any keyframe a live encoder sends.
	DefaultMaxMessageSize = 8 << 20
	// DefaultMaxChunkSize is the default ReaderConfig.MaxChunkSize: 16 MiB,
	// the largest chunk size any message (24-bit length) can use.
	DefaultMaxChunkSize = 16 << 20
	// DefaultMaxChunkStreams is the default ReaderConfig.MaxChunkStreams.
	// Encoders use a handful of chunk streams (ffmpeg: 2..8, OBS: 2..7).
	DefaultMaxChunkStreams = 64

	// maxSetChunkSize is the largest value Set Chunk Size may carry: the top
	// bit must be zero (RTMP 1.0 §5.4.1).
	maxSetChunkSize = 0x7FFFFFFF
	// minAlloc is the payload size always allocated up front when a message
	// header arrives (or the message length, if smaller). See Reader.credit.
	minAlloc = 1024
)

// ReaderConfig limits what a peer can make the reader hold. A zero field
// means its default.
type ReaderConfig struct {
	MaxMessageSize  uint32 // largest message length accepted; default 8 MiB (DefaultMaxMessageSize)
	MaxChunkSize    uint32 // largest SetChunkSize accepted; default 16 MiB (DefaultMaxChunkSize), capped at 0x7FFFFFFF
	MaxChunkStreams int    // most distinct chunk stream ids; default 64 (DefaultMaxChunkStreams)
}

// withDefaults returns c with zero (or out of range) fields replaced by
// their defaults.
func (c ReaderConfig) withDefaults() ReaderConfig {
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxChunkSize == 0 {
		c.MaxChunkSize = DefaultMaxChunkSize
	}
	c.MaxChunkSize = min(c.MaxChunkSize, maxSetChunkSize)
	if c.MaxChunkStreams <= 0 {
		c.MaxChunkStreams = DefaultMaxChunkStreams
	}
	return c
}

// chunkStream is the state the reader keeps per chunk stream id: the last
// message header (which type 1/2/3 headers inherit, RTMP 1.0 §5.3.1.2) and
// the message being reassembled.
type chunkStream struct {
	csid uint32

	// Last header seen on this chunk stream.
	timestamp uint32 // absolute timestamp of the current (or last) message
	delta     uint32 // delta a type 3 chunk starting a new message applies
	length    uint32
	typeID    uint8
	streamID  uint32
	extended  bool // the last type 0/1/2 header used an extended timestamp

	// Message in progress.
	active bool   // a message has started and is not complete
	buf    []byte // payload storage; len(buf) is its capacity so far
	got    uint32 // payload bytes received
}

// Reader reassembles messages from a chunk stream (RTMP 1.0 §5.3). It handles all four
// header formats, extended timestamps on every format including type 3 (the go-rtmp bug),
// interleaved chunk streams, and applies SetChunkSize and Abort messages itself (they are
// still returned to the caller). Not safe for concurrent use.
//
// Every message gets a fresh payload slice, allocated once at its exact
// size in a steady stream. Only a message longer than the payload the peer
// sent recently starts at 1 KiB and doubles as its chunks arrive, so a peer
// cannot make the reader allocate memory it does not send.
//
// After ReadMessage returned an error, every later call returns that same
// error: the chunk stream cannot be resynchronised.
type Reader struct {
	r         io.Reader
	cfg       ReaderConfig
	chunkSize uint32
	n         uint64 // bytes consumed from r
	err       error  // sticky error

	streams map[uint32]*chunkStream
	last    *chunkStream // cache: consecutive chunks often share a csid

	// credit is how many payload bytes the reader may allocate ahead of
	// the data: payload bytes received add to it (up to MaxMessageSize),
	// and what a message header makes the reader allocate beyond minAlloc
	// is taken from it. A message whose length exceeds the credit starts
	// smaller and doubles as its chunks arrive. So a peer declaring huge
	// messages it never sends costs at most minAlloc per header, while a
	// steady stream gets one exact allocation per message (the credit
	// follows the size of recent messages).
	credit uint64

	hdr [15]byte // scratch: message header in [0:11], extended timestamp in [11:15]; reading a chunk does not allocate
}

// NewReader reads chunks from r (the caller wraps r in a bufio.Reader if it wants buffering).
func NewReader(r io.Reader, cfg ReaderConfig) *Reader {
	return &Reader{
		r:         r,
		cfg:       cfg.withDefaults(),
		chunkSize: DefaultChunkSize,
		streams:   make(map[uint32]*chunkStream),
	}
}

// BytesRead returns how many bytes were consumed so far (for Acknowledgement messages).
func (r *Reader) BytesRead() uint64 { return r.n }

// ChunkSize returns the peer's current chunk size (default 128).
func (r *Reader) ChunkSize() uint32 { return r.chunkSize }

// ReadMessage returns the next complete message. Errors are wrapped with context;
// io.EOF is returned as is when the stream ends cleanly between chunks, and
// io.ErrUnexpectedEOF inside a chunk.
//
// Set Chunk Size and Abort messages are applied before they are returned. A
// message of length 0 is complete as soon as its header is read.
func (r *Reader) ReadMessage() (*Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	for {
		m, err := r.readChunk()
		if err == nil && m != nil {
			err = r.control(m)
		}
		if err != nil {
			r.err = err
			return nil, err
		}
		if m != nil {
			return m, nil
		}
	}
}

// readFull reads exactly len(p) bytes, counting them. A clean EOF before the
// first byte is io.EOF, EOF after it io.ErrUnexpectedEOF.
func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.n += uint64(n)
	return err
}

// readChunk reads one chunk and returns the message it completes, if any.
func (r *Reader) readChunk() (*Message, error) {
	// Basic header (§5.3.1.1).
	if err := r.readFull(r.hdr[:1]); err != nil {
		if err == io.EOF {
			return nil, io.EOF // clean end between chunks: returned as is
		}
		return nil, fmt.Errorf("chunk: read basic header: %w", err)
	}
	format := r.hdr[0] >> 6
	csid := uint32(r.hdr[0] & 0x3f)
	switch csid {
	case 0:
		if err := r.readFull(r.hdr[:1]); err != nil {
			return nil, fmt.Errorf("chunk: read basic header: %w", noEOF(err))
		}
		csid = 64 + uint32(r.hdr[0])
	case 1:
		if err := r.readFull(r.hdr[:2]); err != nil {
			return nil, fmt.Errorf("chunk: read basic header: %w", noEOF(err))
		}
		csid = 64 + uint32(binary.LittleEndian.Uint16(r.hdr[:2]))
	}

	cs, err := r.stream(csid, format)
	if err != nil {
		return nil, err
	}

	// Message header (§5.3.1.2) and extended timestamp (§5.3.1.3).
	hdrLen := [4]int{11, 7, 3, 0}[format]
	if hdrLen > 0 {
		if err := r.readFull(r.hdr[:hdrLen]); err != nil {
			return nil, fmt.Errorf("chunk: read type %d header on csid %d: %w", format, csid, noEOF(err))
		}
	}
	var field uint32
	if format < 3 {
		field = uint32(r.hdr[0])<<16 | uint32(r.hdr[1])<<8 | uint32(r.hdr[2])
		cs.extended = field == extendedMarker
	}
	if cs.extended {
		// On type 3 chunks the field is present whenever the last header
		// used one; its value repeats that header's and is not needed.
		if err := r.readFull(r.hdr[11:15]); err != nil {
			return nil, fmt.Errorf("chunk: read extended timestamp on csid %d: %w", csid, noEOF(err))
		}
		if format < 3 {
			field = binary.BigEndian.Uint32(r.hdr[11:15])
		}
	}

	if format < 3 {
		// A new header while a message is in progress abandons that
		// message, as ffmpeg does.
		r.discard(cs)
		switch format {
		case 0:
			cs.timestamp = field
			cs.delta = field
			cs.streamID = binary.LittleEndian.Uint32(r.hdr[7:11])
		default:
			cs.delta = field
			cs.timestamp += field // wraps at 2^32 like the wire timestamp
		}
		if format < 2 {
			cs.length = uint32(r.hdr[3])<<16 | uint32(r.hdr[4])<<8 | uint32(r.hdr[5])
			cs.typeID = r.hdr[6]
		}
		if err := r.start(cs); err != nil {
			return nil, err
		}
	} else if !cs.active {
		// Type 3 starting a new message: same length, type and stream,
		// the last delta again (§5.3.1.2.4).
		cs.timestamp += cs.delta
		if err := r.start(cs); err != nil {
			return nil, err
		}
	}

	// Chunk payload.
	n := min(r.chunkSize, cs.length-cs.got)
	if need := cs.got + n; need > uint32(len(cs.buf)) {
		r.grow(cs, need)
	}
	if err := r.readFull(cs.buf[cs.got : cs.got+n]); err != nil {
		return nil, fmt.Errorf("chunk: read %d payload bytes on csid %d: %w", n, csid, noEOF(err))
	}
	cs.got += n
	r.credit = min(r.credit+uint64(n), uint64(r.cfg.MaxMessageSize))
	if cs.got < cs.length {
		return nil, nil
	}

	m := &Message{
		CSID:      csid,
		TypeID:    cs.typeID,
		StreamID:  cs.streamID,
		Timestamp: cs.timestamp,
		Payload:   cs.buf[:cs.length:cs.length],
	}
	cs.buf = nil
	r.discard(cs)
	return m, nil
}

// stream returns the state of csid, creating it for a type 0 chunk.
func (r *Reader) stream(csid uint32, format byte) (*chunkStream, error) {
	if r.last != nil && r.last.csid == csid {
		return r.last, nil
	}
	cs := r.streams[csid]
	if cs == nil {
		if format != 0 {
			return nil, fmt.Errorf("chunk: type %d chunk on new csid %d: %w", format, csid, ErrNoPreviousHeader)
		}
		if len(r.streams) >= r.cfg.MaxChunkStreams {
			return nil, fmt.Errorf("chunk: csid %d beyond %d chunk streams: %w", csid, r.cfg.MaxChunkStreams, ErrTooManyChunkStreams)
		}
		cs = &chunkStream{csid: csid}
		r.streams[csid] = cs
	}
	r.last = cs
	return cs, nil
}

// start begins a message of cs.length bytes on cs, checking the length
// against MaxMessageSize and allocating its payload (see Reader.credit).
func (r *Reader) start(cs *chunkStream) error {
	if cs.length > r.cfg.MaxMessageSize {
		return fmt.Errorf("chunk: message of %d bytes on csid %d, limit %d: %w",
			cs.length, cs.csid, r.cfg.MaxMessageSize, ErrMessageTooLarge)
	}
	cs.active = true
	cs.got = 0
	size := min(uint64(cs.length), max(minAlloc, r.credit))
	r.credit -= min(r.credit, size)
	cs.buf = make([]byte, size)
	return nil
}

// grow enlarges cs.buf to hold at least need bytes, doubling up to the
// message length so a large message costs O(log n) allocations.
func (r *Reader) grow(cs *chunkStream, need uint32) {
	c := uint64(len(cs.buf)) * 2
	c = max(c, uint64(need))
	c = min(c, uint64(cs.length))
	buf := make([]byte, c)
	copy(buf, cs.buf[:cs.got])
	cs.buf = buf
}

// discard ends the message in progress on cs, if any, releasing its payload.
func (r *Reader) discard(cs *chunkStream) {
	cs.active = false
	cs.buf = nil
	cs.got = 0
}

// control applies Set Chunk Size and Abort (RTMP 1.0 §5.4.1, §5.4.2). They
// are honoured on any chunk stream and message stream, as ffmpeg does.
func (r *Reader) control(m *Message) error {
	switch m.TypeID {
	case TypeSetChunkSize:
		if len(m.Payload) < 4 {
			return fmt.Errorf("chunk: set chunk size with %d byte payload: %w", len(m.Payload), ErrShortControlMessage)
		}
		size := binary.BigEndian.Uint32(m.Payload)
		if size == 0 || size > maxSetChunkSize || size > r.cfg.MaxChunkSize {
			return fmt.Errorf("chunk: set chunk size %d, want 1..%d: %w", size, r.cfg.MaxChunkSize, ErrBadChunkSize)
		}
		r.chunkSize = size
	case TypeAbort:
		if len(m.Payload) < 4 {
			return fmt.Errorf("chunk: abort with %d byte payload: %w", len(m.Payload), ErrShortControlMessage)
		}
		if cs := r.streams[binary.BigEndian.Uint32(m.Payload)]; cs != nil {
			r.discard(cs)
		}
	}
	return nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: inside a chunk the stream
// cannot end cleanly. io.ReadFull already does so after a partial read.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
