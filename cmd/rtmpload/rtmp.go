package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/yutopp/go-rtmp/handshake"

	"github.com/mtrelay/mtrelay/rtmp/amf"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// A lean RTMP player. rtmptest.Client allocates every payload and hands
// each message through a channel from its own reader goroutine; at 1000
// players × 70 messages/s that garbage and those wake-ups would cost the
// load generator more CPU than the relay under test. This player reads the
// chunk stream (RTMP 1.0 §5.3) in its one goroutine straight out of a
// bufio.Reader: media payloads are never copied, only their first and last
// bytes are looked at (keyAcc); only control and command messages, which
// are small, are reassembled.

// Message type IDs (RTMP 1.0 §5.4, §7.1).
const (
	typeSetChunkSize  = 1
	typeAbort         = 2
	typeAck           = 3
	typeUserControl   = 4
	typeWinAckSize    = 5
	typeSetPeerBW     = 6
	typeAudio         = 8
	typeVideo         = 9
	typeCommandAMF3   = 17
	typeData          = 18
	typeCommandAMF0   = 20
	maxControlMessage = 1 << 20 // largest non-media message reassembled
	maxMediaMessage   = 16 << 20
	maxChunkStreams   = 64
	readBufferSize    = 16 << 10
)

// Chunk stream ids the player sends on, as ffmpeg does.
const (
	csidControl   = 2
	csidCommand   = 3
	csidStreamCmd = 8
)

// Errors of the player side.
var (
	// errBadChunk is a chunk stream the player cannot parse.
	errBadChunk = errors.New("rtmpload: bad chunk stream")
	// errStatus is an onStatus or _error that ends the session.
	errStatus = errors.New("rtmpload: refused by server")
)

// csState is what the reader keeps per chunk stream id (RTMP 1.0 §5.3.1.2).
type csState struct {
	csid      uint32
	timestamp uint32
	delta     uint32
	length    uint32
	typeID    uint8
	streamID  uint32
	extended  bool

	active bool
	got    uint32
	acc    keyAcc // media messages: head and tail for the frame key
	buf    []byte // other messages: the payload, reused
}

// rtmpMsg is one complete message as the lean reader returns it.
type rtmpMsg struct {
	typeID    uint8
	streamID  uint32
	timestamp uint32
	length    uint32
	payload   []byte // non-media messages only; valid until the next call
	key       uint64 // media messages only: frameKey of the payload
	b0, b1    byte   // media messages only: first two payload bytes
}

// rtmpReader parses a chunk stream without copying media payloads.
type rtmpReader struct {
	br        *bufio.Reader
	n         uint64 // bytes consumed
	chunkSize uint32
	streams   map[uint32]*csState
	last      *csState
	hdr       [15]byte
}

func newRTMPReader(br *bufio.Reader) *rtmpReader {
	return &rtmpReader{br: br, chunkSize: chunk.DefaultChunkSize, streams: make(map[uint32]*csState)}
}

func (r *rtmpReader) readFull(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.n += uint64(n)
	return err
}

func isMedia(t uint8) bool { return t == typeAudio || t == typeVideo || t == typeData }

// next reads chunks until a message is complete and stores it in m.
func (r *rtmpReader) next(m *rtmpMsg) error {
	for {
		done, err := r.chunk(m)
		if err != nil || done {
			return err
		}
	}
}

// chunk reads one chunk (RTMP 1.0 §5.3.1) and reports whether it completed
// a message.
func (r *rtmpReader) chunk(m *rtmpMsg) (bool, error) {
	if err := r.readFull(r.hdr[:1]); err != nil {
		return false, err
	}
	format := r.hdr[0] >> 6
	csid := uint32(r.hdr[0] & 0x3f)
	switch csid {
	case 0:
		if err := r.readFull(r.hdr[:1]); err != nil {
			return false, err
		}
		csid = 64 + uint32(r.hdr[0])
	case 1:
		if err := r.readFull(r.hdr[:2]); err != nil {
			return false, err
		}
		csid = 64 + uint32(binary.LittleEndian.Uint16(r.hdr[:2]))
	}
	cs := r.last
	if cs == nil || cs.csid != csid {
		cs = r.streams[csid]
		if cs == nil {
			if format != 0 || len(r.streams) >= maxChunkStreams {
				return false, fmt.Errorf("type %d chunk on new csid %d: %w", format, csid, errBadChunk)
			}
			cs = &csState{csid: csid}
			r.streams[csid] = cs
		}
		r.last = cs
	}
	hdrLen := [4]int{11, 7, 3, 0}[format]
	if err := r.readFull(r.hdr[:hdrLen]); err != nil {
		return false, err
	}
	var field uint32
	if format < 3 {
		field = uint32(r.hdr[0])<<16 | uint32(r.hdr[1])<<8 | uint32(r.hdr[2])
		cs.extended = field == 0xFFFFFF
	}
	if cs.extended {
		// Present on type 3 chunks too when the last header had one.
		if err := r.readFull(r.hdr[11:15]); err != nil {
			return false, err
		}
		if format < 3 {
			field = binary.BigEndian.Uint32(r.hdr[11:15])
		}
	}
	start := false
	if format < 3 {
		switch format {
		case 0:
			cs.timestamp, cs.delta = field, field
			cs.streamID = binary.LittleEndian.Uint32(r.hdr[7:11])
		default:
			cs.delta = field
			cs.timestamp += field
		}
		if format < 2 {
			cs.length = uint32(r.hdr[3])<<16 | uint32(r.hdr[4])<<8 | uint32(r.hdr[5])
			cs.typeID = r.hdr[6]
		}
		start = true
	} else if !cs.active {
		cs.timestamp += cs.delta
		start = true
	}
	if start {
		limit := uint32(maxControlMessage)
		if isMedia(cs.typeID) {
			limit = maxMediaMessage
		}
		if cs.length > limit {
			return false, fmt.Errorf("message of %d bytes on csid %d: %w", cs.length, csid, errBadChunk)
		}
		cs.active, cs.got = true, 0
		cs.acc.reset()
		cs.buf = cs.buf[:0]
	}

	// Payload: media is looked at in place in the bufio buffer; other
	// messages are appended to cs.buf.
	n := min(r.chunkSize, cs.length-cs.got)
	for n > 0 {
		p, err := r.br.Peek(int(min(n, uint32(r.br.Size()))))
		if len(p) == 0 && err != nil {
			return false, noEOF(err)
		}
		if isMedia(cs.typeID) {
			cs.acc.write(p)
		} else {
			cs.buf = append(cs.buf, p...)
		}
		_, _ = r.br.Discard(len(p))
		r.n += uint64(len(p))
		n -= uint32(len(p))
		cs.got += uint32(len(p))
	}
	if cs.got < cs.length {
		return false, nil
	}
	cs.active = false
	*m = rtmpMsg{typeID: cs.typeID, streamID: cs.streamID, timestamp: cs.timestamp, length: cs.length}
	if isMedia(cs.typeID) {
		m.key = cs.acc.sum()
		if cs.acc.n > 0 {
			m.b0 = cs.acc.head[0]
		}
		if cs.acc.n > 1 {
			m.b1 = cs.acc.head[1]
		}
		return true, nil
	}
	m.payload = cs.buf
	switch cs.typeID {
	case typeSetChunkSize:
		if len(m.payload) < 4 {
			return false, fmt.Errorf("short set chunk size: %w", errBadChunk)
		}
		size := binary.BigEndian.Uint32(m.payload) & 0x7FFFFFFF
		if size == 0 || size > maxMediaMessage {
			return false, fmt.Errorf("set chunk size %d: %w", size, errBadChunk)
		}
		r.chunkSize = size
	case typeAbort:
		if len(m.payload) >= 4 {
			if a := r.streams[binary.BigEndian.Uint32(m.payload)]; a != nil {
				a.active = false
			}
		}
	}
	return true, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// rtmpSession is a player's RTMP session: the reader plus what it sends.
// Everything is owned by the player goroutine.
type rtmpSession struct {
	conn   net.Conn
	r      *rtmpReader
	wbuf   []byte
	window uint32 // the server's Window Acknowledgement Size
	acked  uint64
	txID   float64
	sid    uint32
	msg    rtmpMsg
}

// newRTMPSession performs the handshake (RTMP 1.0 §5.2) over conn.
func newRTMPSession(ctx context.Context, conn net.Conn) (*rtmpSession, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	br := bufio.NewReaderSize(conn, readBufferSize)
	if err := handshake.HandshakeWithServer(br, conn, &handshake.Config{SkipHandshakeVerification: true}); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return &rtmpSession{conn: conn, r: newRTMPReader(br)}, nil
}

func (s *rtmpSession) send(csid uint32, typeID uint8, sid uint32, payload []byte) error {
	s.wbuf = chunk.AppendMessage(s.wbuf[:0], chunk.DefaultChunkSize, csid, typeID, sid, 0, payload)
	if _, err := s.conn.Write(s.wbuf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (s *rtmpSession) command(csid, sid uint32, name string, args ...any) error {
	s.txID++
	p, err := amf.Encode(append([]any{name, s.txID}, args...)...)
	if err != nil {
		return err
	}
	return s.send(csid, typeCommandAMF0, sid, p)
}

// read returns the next message, answering the protocol control messages
// a player must answer: Acknowledgement once the server's window is reached
// (§5.4.3), Window Acknowledgement Size after Set Peer Bandwidth (as
// librtmp does), and Ping Response to a Ping Request (§7.1.7, event 6).
func (s *rtmpSession) read() (*rtmpMsg, error) {
	m := &s.msg
	if err := s.r.next(m); err != nil {
		return nil, err
	}
	switch m.typeID {
	case typeWinAckSize:
		if len(m.payload) >= 4 {
			s.window = binary.BigEndian.Uint32(m.payload)
		}
	case typeSetPeerBW:
		if len(m.payload) >= 4 {
			if err := s.send(csidControl, typeWinAckSize, 0, m.payload[:4]); err != nil {
				return nil, err
			}
		}
	case typeUserControl:
		if len(m.payload) >= 6 && binary.BigEndian.Uint16(m.payload) == 6 {
			ev := append([]byte{0, 7}, m.payload[2:6]...)
			if err := s.send(csidControl, typeUserControl, 0, ev); err != nil {
				return nil, err
			}
		}
	}
	if s.window > 0 && s.r.n-s.acked >= uint64(s.window) {
		s.acked = s.r.n
		if err := s.send(csidControl, typeAck, 0, binary.BigEndian.AppendUint32(nil, uint32(s.r.n))); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeCommand returns the name, transaction id and arguments of an AMF0
// command (or an AMF0 command in an AMF3 message, §7.1.1).
func decodeCommand(m *rtmpMsg) (name string, txID float64, args []any, ok bool) {
	p := m.payload
	if m.typeID == typeCommandAMF3 && len(p) > 0 && p[0] == 0 {
		p = p[1:]
	} else if m.typeID != typeCommandAMF0 {
		return "", 0, nil, false
	}
	v, err := amf.Decode(p)
	if err != nil || len(v) < 2 {
		return "", 0, nil, false
	}
	name, _ = v[0].(string)
	txID, _ = v[1].(float64)
	return name, txID, v[2:], true
}

// statusCode returns the level and code of an onStatus/_result/_error info
// object (the second argument).
func statusCode(args []any) (level, code string) {
	if len(args) < 2 {
		return "", ""
	}
	info, _ := args[1].(map[string]any)
	level, _ = info["level"].(string)
	code, _ = info["code"].(string)
	return level, code
}

// awaitResult reads until the _result of transaction txID.
func (s *rtmpSession) awaitResult(what string, txID float64) ([]any, error) {
	for range 1000 {
		m, err := s.read()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		name, id, args, ok := decodeCommand(m)
		if !ok || id != txID {
			continue
		}
		switch name {
		case "_result":
			return args, nil
		case "_error":
			_, code := statusCode(args)
			return nil, fmt.Errorf("%s: %s: %w", what, code, errStatus)
		}
	}
	return nil, fmt.Errorf("%s: no answer in 1000 messages: %w", what, errStatus)
}

// play sends connect, createStream, Set Buffer Length and play the way
// ffmpeg does (RTMP 1.0 §7.2) and returns once play is sent; media follows.
func (s *rtmpSession) play(app, tcURL, stream string) error {
	if err := s.command(csidCommand, 0, "connect", map[string]any{
		"app": app, "type": "nonprivate", "flashVer": "LNX 9,0,124,2", "tcUrl": tcURL,
		"fpad": false, "capabilities": 15.0, "audioCodecs": 4071.0, "videoCodecs": 252.0,
		"videoFunction": 1.0, "objectEncoding": 0.0,
	}); err != nil {
		return err
	}
	if _, err := s.awaitResult("connect", s.txID); err != nil {
		return err
	}
	if err := s.command(csidCommand, 0, "createStream", nil); err != nil {
		return err
	}
	args, err := s.awaitResult("createStream", s.txID)
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return fmt.Errorf("createStream: no stream id: %w", errStatus)
	}
	id, _ := args[1].(float64)
	s.sid = uint32(id)
	ev := binary.BigEndian.AppendUint16(nil, 3) // Set Buffer Length, 3000 ms
	ev = binary.BigEndian.AppendUint32(ev, s.sid)
	ev = binary.BigEndian.AppendUint32(ev, 3000)
	if err := s.send(csidControl, typeUserControl, 0, ev); err != nil {
		return err
	}
	return s.command(csidStreamCmd, s.sid, "play", nil, stream, -2000.0)
}

// nextFrame returns the next audio or video message as a frame; a fatal
// onStatus (level error, or the stream ended) is an error.
func (s *rtmpSession) nextFrame(f *frame) error {
	for {
		m, err := s.read()
		if err != nil {
			return err
		}
		switch m.typeID {
		case typeAudio, typeVideo:
			*f = frame{typeID: m.typeID, key: m.key, length: int(m.length), b0: m.b0, b1: m.b1}
			return nil
		case typeCommandAMF0, typeCommandAMF3:
			name, _, args, ok := decodeCommand(m)
			if !ok || name != "onStatus" {
				continue
			}
			level, code := statusCode(args)
			switch {
			case level == "error", code == "NetStream.Play.UnpublishNotify", code == "NetStream.Play.Stop":
				return fmt.Errorf("onStatus %s: %w", code, errStatus)
			}
		}
	}
}

func (s *rtmpSession) bytesRead() uint64 { return s.r.n }

func (s *rtmpSession) setDeadline(t time.Time) { _ = s.conn.SetDeadline(t) }

func (s *rtmpSession) close() { s.conn.Close() }
