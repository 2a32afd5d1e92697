package rtmptest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yutopp/go-rtmp/handshake"

	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// fakeServer is a scripted RTMP server, just enough to drive Client: it
// answers connect, createStream, publish and play, and hands everything else
// the client sends to got. Hooks change its answers.
type fakeServer struct {
	t   *testing.T
	ln  net.Listener
	got chan *chunk.Message // non-command messages from the client

	// Hooks, set before the client connects.
	onConnect func(fc *fakeConn, txID float64) // default: Connect.Success
	onPublish func(fc *fakeConn, name string)  // default: Publish.Start, BadName for "bad"
	onPlay    func(fc *fakeConn, name string)  // default: Play.Reset and Play.Start

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn // guarded by mu
}

// fakeConn is one server-side connection.
type fakeConn struct {
	conn net.Conn
	r    *chunk.Reader
	size uint32 // outgoing chunk size
}

func (fc *fakeConn) send(csid uint32, typeID uint8, sid, ts uint32, p []byte) {
	b := chunk.AppendMessage(nil, fc.size, csid, typeID, sid, ts, p)
	fc.conn.Write(b)
}

func (fc *fakeConn) cmd(sid uint32, values ...any) {
	p, err := EncodeAMF0(values...)
	if err != nil {
		panic(err)
	}
	fc.send(3, typeCommandAMF0, sid, 0, p)
}

func (fc *fakeConn) status(level, code string) {
	fc.cmd(1, "onStatus", 0.0, nil, map[string]any{"level": level, "code": code, "description": code})
}

func (fc *fakeConn) setChunkSize(size uint32) {
	fc.send(2, chunk.TypeSetChunkSize, 0, 0, be32(size))
	fc.size = size
}

func newFakeServer(t *testing.T) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, got: make(chan *chunk.Message, 1000)}
	s.wg.Go(s.acceptLoop)
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) acceptLoop() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(conn) })
	}
}

func (s *fakeServer) serve(conn net.Conn) {
	defer conn.Close()
	if err := handshake.HandshakeWithClient(conn, conn, &handshake.Config{SkipHandshakeVerification: true}); err != nil {
		return
	}
	fc := &fakeConn{conn: conn, r: chunk.NewReader(conn, chunk.ReaderConfig{}), size: chunk.DefaultChunkSize}
	for {
		m, err := fc.r.ReadMessage()
		if err != nil {
			return
		}
		if m.TypeID != typeCommandAMF0 {
			s.got <- m
			continue
		}
		cmd, err := decodeCommand(m)
		if err != nil {
			s.t.Errorf("server: %v", err)
			return
		}
		arg := func(i int) string {
			if len(cmd.args) > i {
				v, _ := cmd.args[i].(string)
				return v
			}
			return ""
		}
		switch cmd.name {
		case "connect":
			if s.onConnect != nil {
				s.onConnect(fc, cmd.txID)
				continue
			}
			fc.send(2, typeWinAckSize, 0, 0, be32(2500000))
			fc.send(2, typeSetPeerBandwidth, 0, 0, append(be32(2500000), 2))
			fc.setChunkSize(4096)
			fc.cmd(0, "_result", cmd.txID, map[string]any{"fmsVer": "FMS/3,0,1,123"},
				map[string]any{"level": "status", "code": "NetConnection.Connect.Success"})
		case "createStream":
			fc.cmd(0, "_result", cmd.txID, nil, 1.0)
		case "publish":
			if s.onPublish != nil {
				s.onPublish(fc, arg(1))
			} else if arg(1) == "bad" {
				fc.status("error", "NetStream.Publish.BadName")
			} else {
				fc.status("status", "NetStream.Publish.Start")
			}
		case "play":
			if arg(1) == "nope" {
				fc.status("error", "NetStream.Play.StreamNotFound")
				continue
			}
			fc.status("status", "NetStream.Play.Reset")
			fc.status("status", "NetStream.Play.Start")
			if s.onPlay != nil {
				s.onPlay(fc, arg(1))
			}
		}
	}
}

// next returns the next non-command message the client sent.
func (s *fakeServer) next(t *testing.T) *chunk.Message {
	t.Helper()
	select {
	case m := <-s.got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("server got nothing")
		return nil
	}
}

func dial(t *testing.T, s *fakeServer) *Client {
	t.Helper()
	c, err := Dial(t.Context(), s.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(5 * time.Second)
	if err := c.Connect("live", "rtmp://"+s.addr()+"/live"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPublish(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s)
	// The client answers Set Peer Bandwidth with Window Acknowledgement Size.
	if m := s.next(t); m.TypeID != typeWinAckSize || binary.BigEndian.Uint32(m.Payload) != 2500000 {
		t.Fatalf("after connect the server got type %d %x, want window ack size 2500000", m.TypeID, m.Payload)
	}
	if err := c.WriteMedia(TypeVideo, 0, []byte{1}); err == nil {
		t.Fatal("WriteMedia before Publish succeeded")
	}
	if err := c.Publish("cam"); err != nil {
		t.Fatal(err)
	}
	meta, err := EncodeAMF0("@setDataFrame", "onMetaData", ECMAArray{"width": 640.0})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0x17, 1, 2, 3, 4}, 3000)
	sent := []FLVTag{
		{TypeData, 0, meta},
		{TypeVideo, 0, big},
		{TypeAudio, 10, []byte{0xAF, 1, 9}},
		{TypeVideo, 0xFFFFFF, big},        // extended timestamps on every chunk
		{TypeVideo, 0xFFFFFFFF, []byte{}}, // zero length
	}
	for _, tag := range sent {
		if err := c.WriteMedia(tag.TypeID, tag.Timestamp, tag.Payload); err != nil {
			t.Fatal(err)
		}
	}
	if m := s.next(t); m.TypeID != chunk.TypeSetChunkSize || binary.BigEndian.Uint32(m.Payload) != 4096 {
		t.Fatalf("first message type %d %x, want Set Chunk Size 4096", m.TypeID, m.Payload)
	}
	for i, tag := range sent {
		m := s.next(t)
		if m.TypeID != tag.TypeID || m.Timestamp != tag.Timestamp || m.StreamID != 1 || !bytes.Equal(m.Payload, tag.Payload) {
			t.Fatalf("message %d: type %d ts %#x stream %d %d bytes; sent type %d ts %#x %d bytes",
				i, m.TypeID, m.Timestamp, m.StreamID, len(m.Payload), tag.TypeID, tag.Timestamp, len(tag.Payload))
		}
	}
	if err := c.CloseStream(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMedia(TypeVideo, 0, []byte{1}); err == nil {
		t.Fatal("WriteMedia after CloseStream succeeded")
	}
}

func TestPublishRefused(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s)
	err := c.Publish("bad")
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Code != "NetStream.Publish.BadName" || !strings.Contains(err.Error(), "NetStream.Publish.BadName") {
		t.Fatalf("Publish: %v, want a StatusError with NetStream.Publish.BadName", err)
	}
}

func TestPublishNoAnswer(t *testing.T) {
	s := newFakeServer(t)
	s.onPublish = func(*fakeConn, string) {}
	c := dial(t, s)
	c.SetTimeout(100 * time.Millisecond)
	if err := c.Publish("cam"); !strings.Contains(fmt.Sprint(err), "no answer to publish") {
		t.Fatalf("Publish without answer: %v", err)
	}
}

func TestConnectRefused(t *testing.T) {
	s := newFakeServer(t)
	s.onConnect = func(fc *fakeConn, txID float64) {
		fc.cmd(0, "_error", txID, nil, map[string]any{"level": "error", "code": "NetConnection.Connect.Rejected"})
	}
	c, err := Dial(t.Context(), s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Connect("live", "rtmp://x/live")
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != "NetConnection.Connect.Rejected" {
		t.Fatalf("Connect: %v, want NetConnection.Connect.Rejected", err)
	}
}

func TestPlay(t *testing.T) {
	s := newFakeServer(t)
	release := make(chan struct{})
	big := bytes.Repeat([]byte{0x27, 9}, 10000)
	s.onPlay = func(fc *fakeConn, name string) {
		fc.setChunkSize(1000)
		fc.send(5, TypeData, 1, 0, []byte("meta"))
		fc.send(6, TypeVideo, 1, 0x1000000, big)
		fc.cmd(1, "onStatus", 0.0, nil, map[string]any{"level": "status", "code": "NetStream.Play.UnpublishNotify"})
		<-release
		fc.status("status", "NetStream.Play.PublishNotify")
		fc.send(4, TypeAudio, 1, 7, []byte{0xAF})
	}
	c := dial(t, s)
	if err := c.Play("nope"); err == nil || !strings.Contains(err.Error(), "NetStream.Play.StreamNotFound") {
		t.Fatalf("Play of a missing stream: %v", err)
	}
	if err := c.Play("cam"); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if m, err := c.ReadMedia(ctx); err != nil || m.TypeID != TypeData || string(m.Payload) != "meta" {
		t.Fatalf("ReadMedia: %v, %v; want the data message", m, err)
	}
	if m, err := c.ReadMedia(ctx); err != nil || m.TypeID != TypeVideo || m.Timestamp != 0x1000000 || !bytes.Equal(m.Payload, big) {
		t.Fatalf("ReadMedia: %v, %v; want the video message", m, err)
	}
	_, err := c.ReadMedia(ctx)
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != "NetStream.Play.UnpublishNotify" {
		t.Fatalf("ReadMedia: %v, want UnpublishNotify", err)
	}
	// A read that times out leaves the client usable.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.ReadMedia(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadMedia with nothing to read: %v, want deadline exceeded", err)
	}
	close(release)
	if m, err := c.ReadMedia(ctx); err != nil || m.TypeID != TypeAudio || m.Timestamp != 7 {
		t.Fatalf("ReadMedia after the timeout: %v, %v; want the audio message", m, err)
	}
}

// TestAck checks the client acknowledges once the server's window is reached.
func TestAck(t *testing.T) {
	s := newFakeServer(t)
	s.onPlay = func(fc *fakeConn, _ string) {
		fc.send(2, typeWinAckSize, 0, 0, be32(5000))
		fc.send(6, TypeVideo, 1, 0, make([]byte, 6000))
	}
	c := dial(t, s)
	s.next(t) // window ack size
	if err := c.Play("cam"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMedia(t.Context()); err != nil {
		t.Fatal(err)
	}
	var m *chunk.Message
	for m = s.next(t); m.TypeID == typeUserControl; m = s.next(t) {
	}
	if m.TypeID != typeAck || binary.BigEndian.Uint32(m.Payload) < 5000 {
		t.Fatalf("server got type %d %x, want an Acknowledgement >= 5000", m.TypeID, m.Payload)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s)
	done := make(chan error)
	go func() {
		_, err := c.ReadMedia(context.Background())
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let ReadMedia block; the test passes either way
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadMedia after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestServerGone(t *testing.T) {
	s := newFakeServer(t)
	s.onPlay = func(fc *fakeConn, _ string) { fc.conn.Close() }
	c := dial(t, s)
	if err := c.Play("cam"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMedia(t.Context()); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadMedia after the server left: %v, want io.EOF", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, ln.Addr().String()); err == nil {
		t.Fatal("handshake with a silent server succeeded")
	}
}

func TestNewClient(t *testing.T) {
	s := newFakeServer(t)
	conn, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect("live", "rtmp://x/live"); err != nil {
		t.Fatal(err)
	}
}
