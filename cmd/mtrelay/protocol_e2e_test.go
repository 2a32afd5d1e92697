package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// RTMP message type ids the raw client looks at (RTMP 1.0 §5.4, §7.1).
const (
	rawSetChunkSize  = 1
	rawUserControl   = 4
	rawWindowAckSize = 5
	rawSetPeerBW     = 6
	rawCommandAMF0   = 20
)

// rawClient speaks RTMP by hand over a conn that did the handshake: it writes
// commands at the default chunk size and reads every message the relay sends, in
// order, with a chunk.Reader (which applies the relay's Set Chunk Size).
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *chunk.Reader
}

// rawConnect dials the relay over transport ("rtmp" or "rtmpt") and does the
// handshake; the conn is closed when the test ends.
func (r *testRelay) rawConnect(t *testing.T, transport string) *rawClient {
	t.Helper()
	var conn net.Conn
	switch transport {
	case "rtmp":
		conn = rawDial(t, r.rtmpAddr)
	case "rtmpt":
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		tc, err := tunneltest.Dial(ctx, "http://"+r.httpAddr)
		if err != nil {
			t.Fatalf("rtmpt dial: %v", err)
		}
		t.Cleanup(func() { tc.Close() })
		if err := rawHandshake(tc); err != nil {
			t.Fatalf("rtmpt handshake: %v", err)
		}
		conn = tc
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	return &rawClient{t: t, conn: conn, r: chunk.NewReader(conn, chunk.ReaderConfig{})}
}

// send writes an AMF0 command on message stream sid.
func (c *rawClient) send(sid uint32, vals ...any) {
	c.t.Helper()
	if _, err := c.conn.Write(appendCommand(c.t, nil, sid, vals...)); err != nil {
		c.t.Fatalf("write %v: %v", vals[0], err)
	}
}

// next returns the next message from the relay, whatever its type, and how many
// bytes of the chunk stream it took.
func (c *rawClient) next() (*chunk.Message, uint64) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	before := c.r.BytesRead()
	m, err := c.r.ReadMessage()
	if err != nil {
		c.t.Fatalf("read from relay: %v", err)
	}
	return m, c.r.BytesRead() - before
}

// rawCmd is a decoded command message.
type rawCmd struct {
	name string
	txn  float64
	args []any // after the transaction id
	sid  uint32
}

// info returns the information object, the second argument after the transaction id.
func (c rawCmd) info() map[string]any {
	if len(c.args) < 2 {
		return nil
	}
	m, _ := c.args[1].(map[string]any)
	return m
}

func (c rawCmd) code() string {
	s, _ := c.info()["code"].(string)
	return s
}

func (c rawCmd) String() string {
	return fmt.Sprintf("%s(txn %v, %v) on stream %d", c.name, c.txn, c.args, c.sid)
}

func decodeRawCmd(t *testing.T, m *chunk.Message) rawCmd {
	t.Helper()
	if m.TypeID != rawCommandAMF0 {
		t.Fatalf("message of type %d (%d bytes), want a command", m.TypeID, len(m.Payload))
	}
	v, err := rtmptest.DecodeAMF0(m.Payload)
	if err != nil || len(v) < 2 {
		t.Fatalf("command %q: %v, %v", m.Payload, v, err)
	}
	name, _ := v[0].(string)
	txn, _ := v[1].(float64)
	return rawCmd{name: name, txn: txn, args: v[2:], sid: m.StreamID}
}

// command returns the next command, skipping the control messages (User Control,
// Acknowledgement) that may come between commands.
func (c *rawClient) command() rawCmd {
	c.t.Helper()
	for {
		m, _ := c.next()
		if m.TypeID == rawCommandAMF0 {
			return decodeRawCmd(c.t, m)
		}
		if m.TypeID > rawSetPeerBW {
			c.t.Fatalf("message of type %d (%d bytes) while waiting for a command", m.TypeID, len(m.Payload))
		}
	}
}

// expect returns the next command and fails unless it is name with transaction txn.
func (c *rawClient) expect(name string, txn float64) rawCmd {
	c.t.Helper()
	cmd := c.command()
	if cmd.name != name || cmd.txn != txn {
		c.t.Fatalf("got %v, want %s with transaction %v", cmd, name, txn)
	}
	return cmd
}

// basicHeaderLen is the size of a chunk basic header for csid (RTMP 1.0 §5.3.1.1).
func basicHeaderLen(csid uint32) uint64 {
	switch {
	case csid < 64:
		return 1
	case csid < 320:
		return 2
	}
	return 3
}

// TestConnectReplies checks the relay's answer to connect message by message: Set
// Chunk Size of at least 4096, with the rest chunked at that size, Window
// Acknowledgement Size, Set Peer Bandwidth, then _result with
// NetConnection.Connect.Success and onBWDone.
func TestConnectReplies(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	forEachTransport(t, func(t *testing.T, transport string) {
		c := r.rawConnect(t, transport)
		c.send(0, "connect", 1.0, map[string]any{"app": "live", "tcUrl": r.url(transport, "live"), "objectEncoding": 0.0})

		m, _ := c.next()
		if m.TypeID != rawSetChunkSize || len(m.Payload) != 4 {
			t.Fatalf("first message: type %d, %d bytes; want Set Chunk Size", m.TypeID, len(m.Payload))
		}
		cs := binary.BigEndian.Uint32(m.Payload)
		if cs < 4096 || cs > 0x7FFFFFFF {
			t.Fatalf("Set Chunk Size %d, want 4096 or more", cs)
		}
		if m, _ = c.next(); m.TypeID != rawWindowAckSize || len(m.Payload) != 4 || binary.BigEndian.Uint32(m.Payload) == 0 {
			t.Fatalf("second message: type %d % x; want Window Acknowledgement Size", m.TypeID, m.Payload)
		}
		if m, _ = c.next(); m.TypeID != rawSetPeerBW || len(m.Payload) != 5 || m.Payload[4] > 2 {
			t.Fatalf("third message: type %d % x; want Set Peer Bandwidth", m.TypeID, m.Payload)
		}

		m, n := c.next()
		res := decodeRawCmd(t, m)
		if res.name != "_result" || res.txn != 1 || res.code() != "NetConnection.Connect.Success" {
			t.Fatalf("fourth message: %v; want _result NetConnection.Connect.Success", res)
		}
		// Over 128 bytes, so chunked at 128 it would take a second chunk; at the
		// announced size it is one chunk: a basic header, the 11-byte type 0 header
		// and the payload.
		if want := basicHeaderLen(m.CSID) + 11 + uint64(len(m.Payload)); len(m.Payload) <= chunk.DefaultChunkSize || n != want {
			t.Errorf("_result of %d bytes took %d bytes on the wire, want %d (one chunk at size %d)", len(m.Payload), n, want, cs)
		}
		if bw := decodeRawCmd(t, first(c.next())); bw.name != "onBWDone" {
			t.Fatalf("fifth message: %v; want onBWDone", bw)
		}
	})
}

func first(m *chunk.Message, _ uint64) *chunk.Message { return m }

// TestCommandReplies checks getStreamLength, FCUnpublish, an unknown command and
// deleteStream of a publishing stream on one raw connection.
func TestCommandReplies(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	forEachTransport(t, func(t *testing.T, transport string) {
		key := "live/cmds-" + transport
		_, name := splitKey(key)
		c := r.rawConnect(t, transport)
		c.send(0, "connect", 1.0, map[string]any{"app": "live", "tcUrl": r.url(transport, "live")})
		c.expect("_result", 1)
		c.expect("onBWDone", 0)

		c.send(0, "getStreamLength", 2.0, nil, name)
		if res := c.expect("_result", 2); len(res.args) < 2 {
			t.Fatalf("getStreamLength: %v, want a number", res)
		} else if _, ok := res.args[1].(float64); !ok {
			t.Fatalf("getStreamLength: %v, want a number after the null command object", res)
		}

		c.send(0, "FCUnpublish", 3.0, nil, name)
		c.expect("onFCUnpublish", 0)

		c.send(0, "noSuchCommand", 4.0, nil, "x")
		if res := c.expect("_error", 4); res.code() != "NetConnection.Call.Failed" {
			t.Fatalf("unknown command: %v, want NetConnection.Call.Failed", res)
		}
		c.send(0, "getStreamLength", 5.0, nil, name)
		c.expect("_result", 5) // still usable

		c.send(0, "createStream", 6.0, nil)
		res := c.expect("_result", 6)
		sid, ok := res.args[len(res.args)-1].(float64)
		if !ok || sid < 1 {
			t.Fatalf("createStream: %v, want a stream id", res)
		}
		c.send(uint32(sid), "publish", 7.0, nil, name, "live")
		if st := c.expect("onStatus", 0); st.code() != "NetStream.Publish.Start" {
			t.Fatalf("publish: %v", st)
		}
		if s, ok := r.stream(t, key); !ok || !s.Live {
			t.Fatalf("after publish, /api/streams has %+v (found %v), want it live", s, ok)
		}

		// deleteStream has no answer; the next _result shows it was handled (an RTMPT
		// client only sends what it wrote when it reads).
		c.send(0, "deleteStream", 8.0, nil, sid)
		c.send(0, "getStreamLength", 9.0, nil, name)
		c.expect("_result", 9)
		waitFor(t, 10*time.Second, key+" not live after deleteStream", func() bool {
			s, ok := r.stream(t, key)
			return !ok || !s.Live
		})
	})
}

// TestMediaChunkedAtAnnouncedSize checks that a raw player reads media messages
// longer than the announced chunk size intact with a reader that follows the
// relay's Set Chunk Size.
func TestMediaChunkedAtAnnouncedSize(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	tags := fixtureTags(t)
	sent := make(map[string]bool)
	large := 0 // media payloads over 4096 bytes, the smallest chunk size the relay may announce
	for _, tg := range tags {
		sent[string(tg.Payload)] = true
		if len(tg.Payload) > 4096 && tg.TypeID != rtmptest.TypeData {
			large++
		}
	}
	if large < 3 {
		t.Fatalf("the fixture has %d media payloads over 4096 bytes, want 3 or more", large)
	}
	forEachTransport(t, func(t *testing.T, transport string) {
		key := "live/chunked-" + transport
		_, name := splitKey(key)
		c := r.rawConnect(t, transport)
		c.send(0, "connect", 1.0, map[string]any{"app": "live", "tcUrl": r.url(transport, "live")})
		m, _ := c.next()
		cs := binary.BigEndian.Uint32(m.Payload)
		c.expect("_result", 1)
		c.expect("onBWDone", 0)
		c.send(0, "createStream", 2.0, nil)
		c.expect("_result", 2)
		c.send(1, "play", 3.0, nil, name, -2000.0)
		// The player must be attached before the publisher sends everything at once,
		// or it would join late and see only the last GOP: read up to Play.Start (an
		// RTMPT client only sends the play with its next read anyway).
		c.expect("onStatus", 0) // NetStream.Play.Reset
		c.expect("onStatus", 0) // NetStream.Play.Start

		pub := r.publisher(t, transport, key)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		goSend(t, ctx, pub, tags, 0, newPacer(0, 0))

		for big := 0; big < 3; {
			m, _ := c.next()
			if m.TypeID != rtmptest.TypeVideo && m.TypeID != rtmptest.TypeAudio {
				continue
			}
			if !sent[string(m.Payload)] {
				t.Fatalf("media message of type %d, %d bytes, is not one the publisher sent", m.TypeID, len(m.Payload))
			}
			if uint32(len(m.Payload)) > cs {
				big++
			}
		}
	})
}
