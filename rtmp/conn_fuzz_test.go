package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/amf"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// scriptConn is a net.Conn whose read side is a fixed byte stream, served at most
// step bytes per Read (all of it when step is 0), then io.EOF. Writes never block
// and are kept. Deadlines are accepted and ignored: nothing ever blocks.
type scriptConn struct {
	step int

	mu     sync.Mutex
	in     []byte       // guarded by mu: what is left to read
	out    bytes.Buffer // guarded by mu: everything written
	closed bool         // guarded by mu
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	if c.step > 0 && len(p) > c.step {
		p = p[:c.step]
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

var (
	scriptLocal  = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1935}
	scriptRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
)

func (c *scriptConn) LocalAddr() net.Addr              { return scriptLocal }
func (c *scriptConn) RemoteAddr() net.Addr             { return scriptRemote }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// panicLog is a zerolog writer that notes the lines of a recovered panic: the
// connection's and the writer's recover log the value under the key "panic". A
// client's own strings cannot fake the key: zerolog escapes their quotes.
type panicLog struct {
	mu    sync.Mutex
	lines []string // guarded by mu
}

func (l *panicLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"panic":`)) {
		l.mu.Lock()
		l.lines = append(l.lines, string(p))
		l.mu.Unlock()
	}
	return len(p), nil
}

func (l *panicLog) panics() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

// msgs builds a client's chunk stream, following its own Set Chunk Size.
type msgs struct {
	t    testing.TB
	size uint32
	b    []byte
}

func newMsgs(t testing.TB) *msgs { return &msgs{t: t, size: chunk.DefaultChunkSize} }

func (m *msgs) raw(csid uint32, typeID uint8, sid, ts uint32, payload []byte) *msgs {
	m.b = chunk.AppendMessage(m.b, m.size, csid, typeID, sid, ts, payload)
	if typeID == typeSetChunkSize {
		m.size = binary.BigEndian.Uint32(payload)
	}
	return m
}

func (m *msgs) amf(csid uint32, typeID uint8, sid uint32, vals ...any) *msgs {
	return m.raw(csid, typeID, sid, 0, encode(m.t, vals...))
}

func encode(t testing.TB, vals ...any) []byte {
	t.Helper()
	p, err := amf.Encode(vals...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (m *msgs) cmd(sid uint32, vals ...any) *msgs {
	return m.amf(csidCommand, typeCommandAMF0, sid, vals...)
}

// connectMessage is the connect command every FuzzServeConn input starts with.
func connectMessage(t testing.TB) []byte {
	return newMsgs(t).cmd(0, "connect", 1.0, map[string]any{
		"app": "live", "type": "nonprivate", "flashVer": "FMLE/3.0", "tcUrl": "rtmp://127.0.0.1/live",
		"objectEncoding": 0.0,
	}).b
}

// connSeeds are what follows connect in FuzzServeConn's seed corpus.
func connSeeds(t testing.TB) map[string][]byte {
	var video, audio [][]byte
	for _, tc := range mediaCases {
		if tc.typeID == typeVideo {
			video = append(video, tc.payload)
		} else {
			audio = append(audio, tc.payload)
		}
	}
	meta := encode(t, "@setDataFrame", "onMetaData", amf.ECMAArray{
		"width": 1280.0, "height": 720.0, "framerate": 30.0, "videocodecid": 7.0, "audiocodecid": 10.0,
		"audiosamplerate": 48000.0, "stereo": true,
	})

	publish := newMsgs(t).raw(csidControl, typeSetChunkSize, 0, 0, be32(4096)).
		cmd(0, "releaseStream", 2.0, nil, "cam").
		cmd(0, "FCPublish", 3.0, nil, "cam").
		cmd(0, "createStream", 4.0, nil).
		amf(8, typeCommandAMF0, 1, "publish", 5.0, nil, "cam?key=K", "live").
		raw(csidData, typeDataAMF0, 1, 0, meta)
	ts := uint32(0)
	for _, p := range video {
		publish.raw(csidVideo, typeVideo, 1, ts, p)
		ts += 33
	}
	for _, p := range audio {
		publish.raw(csidAudio, typeAudio, 1, ts, p)
		ts += 21
	}
	publish.raw(csidVideo, typeVideo, 1, 0xFFFFFF+5, mediaCases[1].payload) // extended timestamp
	publish.cmd(0, "FCUnpublish", 6.0, nil, "cam").cmd(0, "deleteStream", 7.0, nil, 1.0)

	// Publish and play the same key on one connection: the media comes back out.
	loop := newMsgs(t).cmd(0, "createStream", 2.0, nil).cmd(0, "createStream", 3.0, nil).
		amf(8, typeCommandAMF0, 1, "publish", 4.0, nil, "self", "live").
		raw(csidControl, typeUserControl, 0, 0, []byte{0, 3, 0, 0, 0, 2, 0, 0, 0x0b, 0xb8}).
		amf(8, typeCommandAMF0, 2, "play", 5.0, nil, "self", -2000.0).
		raw(csidData, typeDataAMF0, 1, 0, meta).
		raw(csidVideo, typeVideo, 1, 0, mediaCases[0].payload).
		raw(csidVideo, typeVideo, 1, 40, mediaCases[1].payload).
		raw(csidAudio, typeAudio, 1, 40, mediaCases[16].payload).
		cmd(0, "closeStream", 6.0, nil).
		amf(8, typeCommandAMF0, 1, "closeStream", 7.0)

	play := newMsgs(t).cmd(0, "createStream", 2.0, nil).
		raw(csidControl, typeUserControl, 0, 0, []byte{0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8}).
		amf(8, typeCommandAMF0, 1, "play", 3.0, nil, "cam", -2000.0, -1.0, true).
		amf(8, typeCommandAMF0, 1, "play", 4.0, nil, "other")

	misc := newMsgs(t).cmd(0, "getStreamLength", 2.0, nil, "cam").
		cmd(0, "noSuchCommand", 3.0, nil).
		cmd(0, "noSuchCommand", 0.0).
		cmd(0, "connect", 4.0, map[string]any{"app": "again"}).
		raw(csidControl, typeWindowAckSize, 0, 0, be32(64)).
		raw(csidControl, typeUserControl, 0, 0, []byte{0, 6, 1, 2, 3, 4}).
		raw(csidControl, typeAck, 0, 0, be32(1000)).
		raw(csidControl, typeSetPeerBW, 0, 0, []byte{0, 0, 0x10, 0, 2}).
		raw(csidControl, typeAbort, 0, 0, be32(9)).
		raw(csidCommand, typeCommandAMF3, 0, 0, append([]byte{0}, encode(t, "createStream", 5.0, nil)...)).
		raw(csidData, typeDataAMF3, 0, 0, []byte{0, 2, 0, 1, 'x'}).
		raw(csidData, typeAggregate, 1, 0, []byte{9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x17, 0, 0, 0, 12}).
		raw(csidData, typeSharedObjAMF0, 0, 0, []byte{1, 2, 3}).
		cmd(0, "deleteStream", 6.0, nil, -1.0).
		cmd(0, "deleteStream", 7.0, nil, 1e300).
		cmd(0, "FCUnpublish", 8.0, nil, "?")

	return map[string][]byte{
		"publish":   publish.b,
		"self play": loop.b,
		"play":      play.b,
		"misc":      misc.b,
		"garbage":   []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe\x03\x03\x03"),
		"huge":      {0x03, 0, 0, 0, 0xff, 0xff, 0xff, typeCommandAMF0, 0, 0, 0, 0},
		"truncated": newMsgs(t).cmd(0, "createStream", 2.0, nil).b[:20],
		"bad amf":   newMsgs(t).raw(csidCommand, typeCommandAMF0, 0, 0, []byte{0x02, 0, 9, 'x'}).b,
	}
}

// handshakeBytes is C0, C1 and C2 of a client that does not look at the server's
// answer (C2 is not verified).
func handshakeBytes() []byte {
	b := make([]byte, 1+2*1536)
	b[0] = 3
	return b
}

// FuzzServeConn runs a real Server and hub over one scripted connection: the
// handshake, connect, then the fuzz bytes as the client's chunk stream, read at most
// step bytes at a time, then EOF. The connection must end on its own, no panic may be
// recovered (the server logs them), and what the server wrote must be S0+S1+S2 and a
// well-formed chunk stream whose commands decode as AMF0.
func FuzzServeConn(f *testing.F) {
	for _, seed := range connSeeds(f) {
		f.Add(uint8(0), seed)
		f.Add(uint8(7), seed)
	}
	connect := connectMessage(f)
	hs := handshakeBytes()
	f.Fuzz(func(t *testing.T, step uint8, data []byte) {
		// A hung connection is a crash: the fuzzer keeps the input that caused it.
		watchdog := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("FuzzServeConn: iteration still running after 10s\n%s", buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		logs := &panicLog{}
		log := zerolog.New(logs).Level(zerolog.DebugLevel)
		hub, err := relay.New(relay.Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{HandshakeTimeout: time.Second, IdleTimeout: time.Second, WriteTimeout: time.Second}, log, hub)
		if err != nil {
			t.Fatal(err)
		}
		in := make([]byte, 0, len(hs)+len(connect)+len(data))
		in = append(append(append(in, hs...), connect...), data...)
		nc := &scriptConn{step: int(step), in: in}
		srv.ServeConn(context.Background(), nc)
		if n := srv.Conns(); n != 0 {
			t.Errorf("%d connections still served after ServeConn returned", n)
		}
		hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if p := logs.panics(); len(p) > 0 {
			t.Fatalf("the server recovered a panic:\n%s", p)
		}
		checkServerOutput(t, nc.written())
	})
}

// checkServerOutput checks the bytes a server wrote: S0+S1+S2, then whole messages
// that a chunk reader parses, the first three (if any) being the answer to connect
// (Set Chunk Size of 4096, Window Acknowledgement Size, Set Peer Bandwidth), and every
// command decodable AMF0 that starts with a name.
func checkServerOutput(t *testing.T, out []byte) {
	t.Helper()
	const s012 = 1 + 2*1536
	if len(out) < s012 || out[0] != 3 {
		t.Fatalf("server wrote %d bytes, want S0 (3) + S1 + S2 first", len(out))
	}
	r := chunk.NewReader(bytes.NewReader(out[s012:]), chunk.ReaderConfig{MaxMessageSize: 64 << 20})
	wantFirst := []uint8{typeSetChunkSize, typeWindowAckSize, typeSetPeerBW}
	for i := 0; ; i++ {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("server output, message %d: %v", i, err)
		}
		if i < len(wantFirst) && m.TypeID != wantFirst[i] {
			t.Fatalf("server message %d has type %d, want %d", i, m.TypeID, wantFirst[i])
		}
		if i == 0 && binary.BigEndian.Uint32(m.Payload) != 4096 {
			t.Fatalf("server announced chunk size %d, want 4096", binary.BigEndian.Uint32(m.Payload))
		}
		if m.TypeID == typeCommandAMF0 {
			vals, err := amf.Decode(m.Payload)
			if err != nil || len(vals) == 0 {
				t.Fatalf("server message %d (type %d): %v, %v", i, m.TypeID, vals, err)
			}
			if _, ok := vals[0].(string); !ok {
				t.Fatalf("server command %d does not start with a name: %v", i, vals)
			}
		}
	}
}
