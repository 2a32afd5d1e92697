package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// Timeouts of the bad input relay: short, so that inputs that leave the relay waiting
// for more bytes end quickly, and apart from the time a refused input may take.
const (
	badHandshakeTimeout = 3 * time.Second
	badIdleTimeout      = 6 * time.Second
	// badPromptly bounds how long the relay may take to close a connection over input
	// it can tell is bad: less than any timeout, so the input is what closed it.
	badPromptly = badHandshakeTimeout - 500*time.Millisecond
	// badEventually bounds how long a connection left waiting for bytes stays open.
	badEventually = badIdleTimeout + 4*time.Second
)

// badCase is one malformed input, sent on its own connection.
type badCase struct {
	name string
	// raw bytes written after dialing; with handshake, after the handshake instead.
	handshake bool
	raw       func(t *testing.T, addr string) []byte
	// closeWrite half-closes the connection after raw, as a client that dies mid-chunk.
	closeWrite bool
	// within is how long the relay may take to close the connection.
	within time.Duration
}

// amfCommand returns an AMF0 command message body: name, transaction id 1, then the
// raw bytes tail (values the relay must decode).
func amfCommand(t *testing.T, name string, tail []byte) []byte {
	t.Helper()
	p, err := rtmptest.EncodeAMF0(name, 1.0)
	if err != nil {
		t.Fatal(err)
	}
	return append(p, tail...)
}

// message returns one message as chunks at the default chunk size (128).
func message(csid uint32, typeID uint8, payload []byte) []byte {
	return chunk.AppendMessage(nil, chunk.DefaultChunkSize, csid, typeID, 0, 0, payload)
}

func badCases() []badCase {
	seeded := func(n int, first byte) []byte {
		rng := rand.New(rand.NewPCG(2, 6))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0] = first
		return b
	}
	return []badCase{
		{name: "http_request", raw: func(*testing.T, string) []byte {
			return []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		}, within: badPromptly},
		{name: "tls_client_hello_like_garbage", raw: func(*testing.T, string) []byte { return seeded(3000, 0x16) }, within: badPromptly},
		{name: "rtmpe_c0_version_6", raw: func(*testing.T, string) []byte { return seeded(1537, 6) }, within: badPromptly},
		{name: "c0_only_then_silence", raw: func(*testing.T, string) []byte { return []byte{3} }, within: badHandshakeTimeout + 3*time.Second},
		// C0 3 and random C1, C2 and chunks: the relay answers the handshake, then
		// either refuses the chunks or waits for more until the idle timeout.
		{name: "random_after_c0", raw: func(*testing.T, string) []byte { return seeded(5000, 3) }, within: badEventually},
		{name: "truncated_chunk", handshake: true, closeWrite: true, raw: func(t *testing.T, addr string) []byte {
			return connectPlayCommands(t, addr, "live/x")[:40]
		}, within: badPromptly},
		{name: "message_length_16MiB", handshake: true, raw: func(*testing.T, string) []byte {
			// Type 0 header on csid 3: timestamp 0, length 0xFFFFFF, command, stream 0.
			return []byte{0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0}
		}, within: badPromptly},
		{name: "type3_chunk_on_unknown_csid", handshake: true, raw: func(*testing.T, string) []byte {
			return append([]byte{0xC0 | 5}, bytes.Repeat([]byte{0xAA}, 128)...)
		}, within: badPromptly},
		{name: "type1_chunk_on_unknown_csid", handshake: true, raw: func(*testing.T, string) []byte {
			return []byte{0x40 | 7, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4}
		}, within: badPromptly},
		{name: "too_many_chunk_streams", handshake: true, raw: func(*testing.T, string) []byte {
			var b []byte
			for csid := uint32(10); csid < 10+200; csid++ {
				b = append(b, message(csid, 99, []byte{1})...)
			}
			return b
		}, within: badPromptly},
		{name: "set_chunk_size_0", handshake: true, raw: func(*testing.T, string) []byte {
			return message(2, chunk.TypeSetChunkSize, []byte{0, 0, 0, 0})
		}, within: badPromptly},
		{name: "set_chunk_size_2GiB", handshake: true, raw: func(*testing.T, string) []byte {
			return message(2, chunk.TypeSetChunkSize, []byte{0x7F, 0xFF, 0xFF, 0xFF})
		}, within: badPromptly},
		{name: "set_chunk_size_short", handshake: true, raw: func(*testing.T, string) []byte {
			return message(2, chunk.TypeSetChunkSize, []byte{0, 1})
		}, within: badPromptly},
		{name: "amf_marker_0x11", handshake: true, raw: func(t *testing.T, _ string) []byte {
			return message(3, 20, amfCommand(t, "connect", []byte{0x11, 0x0A, 0x01, 0x02}))
		}, within: badPromptly},
		{name: "amf_unknown_marker", handshake: true, raw: func(t *testing.T, _ string) []byte {
			return message(3, 20, amfCommand(t, "connect", []byte{0x7E, 1, 2, 3}))
		}, within: badPromptly},
		{name: "amf_deep_nesting", handshake: true, raw: func(t *testing.T, _ string) []byte {
			// 5000 objects, each the value of property "a" of the one before.
			tail := []byte{0x03}
			for range 5000 {
				tail = append(tail, 0x00, 0x01, 'a', 0x03)
			}
			return message(3, 20, amfCommand(t, "connect", tail))
		}, within: badPromptly},
		{name: "amf_deep_strict_arrays", handshake: true, raw: func(t *testing.T, _ string) []byte {
			tail := bytes.Repeat([]byte{0x0A, 0, 0, 0, 1}, 5000)
			return message(3, 20, amfCommand(t, "connect", tail))
		}, within: badPromptly},
		{name: "amf_huge_strict_array_count", handshake: true, raw: func(t *testing.T, _ string) []byte {
			return message(3, 20, amfCommand(t, "connect", []byte{0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05}))
		}, within: badPromptly},
		{name: "amf_huge_ecma_array_truncated", handshake: true, raw: func(t *testing.T, _ string) []byte {
			return message(3, 20, amfCommand(t, "connect", []byte{0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01}))
		}, within: badPromptly},
		{name: "amf_long_string_truncated", handshake: true, raw: func(t *testing.T, _ string) []byte {
			return message(3, 20, amfCommand(t, "connect", []byte{0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 'a'}))
		}, within: badPromptly},
		{name: "command_not_amf_at_all", handshake: true, raw: func(*testing.T, string) []byte {
			return message(3, 20, []byte{0xFF, 0xFE, 0xFD})
		}, within: badPromptly},
		{name: "command_without_name", handshake: true, raw: func(t *testing.T, _ string) []byte {
			p, err := rtmptest.EncodeAMF0(1.0, 2.0)
			if err != nil {
				t.Fatal(err)
			}
			return message(3, 20, p)
		}, within: badPromptly},
		{name: "amf3_command", handshake: true, raw: func(*testing.T, string) []byte {
			return message(3, 17, []byte{0x06, 0x0F, 'c', 'o', 'n', 'n', 'e', 'c', 't'})
		}, within: badPromptly},
		{name: "connect_with_non_object_argument", handshake: true, raw: func(t *testing.T, _ string) []byte {
			p, err := rtmptest.EncodeAMF0("connect", 1.0, "not an object")
			if err != nil {
				t.Fatal(err)
			}
			return message(3, 20, p)
		}, within: badPromptly},
		{name: "publish_before_connect", handshake: true, raw: func(t *testing.T, _ string) []byte {
			return appendCommand(t, nil, 1, "publish", 5.0, nil, "x", "live")
		}, within: badPromptly},
		{name: "second_connect", handshake: true, raw: func(t *testing.T, addr string) []byte {
			b := appendCommand(t, nil, 0, "connect", 1.0, map[string]any{"app": "live"})
			return appendCommand(t, b, 0, "connect", 2.0, map[string]any{"app": "live"})
		}, within: badPromptly},
	}
}

// TestBadInputClosesOnlyThatConnection sends malformed input on many connections, one
// after the other (parallel subtests would wait for -parallel slots), while a healthy publisher streams to a healthy player on the same relay.
// Each bad connection must be closed (promptly where the relay can tell the input is
// bad, by a timeout where it is only left waiting), with a log line giving the
// reason, and nothing panics; unknown message types are ignored without closing.
// The healthy player must get every frame, and the relay must still accept
// connections afterwards.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	const key = "live/healthy"
	r, logs := startRelayLogs(t, func(c *Config) {
		c.HandshakeTimeout = badHandshakeTimeout
		c.IdleTimeout = badIdleTimeout
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	player := r.player(t, "rtmp", key)
	read := goRead(t, ctx, player, nil)
	pub := r.publisher(t, "rtmp", key)
	// At most 50 s of media at twice real time: enough for every bad input.
	stopPub := livePublisher(t, ctx, pub, loopTags(fixtureTags(t), 5), newPacer(2, 0))

	remotes := make(chan string, 100) // of the RTMP connections
	rtmptCases := 0
	t.Run("bad", func(t *testing.T) {
		for _, transport := range transports {
			for _, tc := range badCases() {
				if transport == "rtmpt" && tc.closeWrite {
					continue // a tunnel has no half close
				}
				t.Run(transport+"/"+tc.name, func(t *testing.T) {
					conn := dialBad(t, r, transport)
					if transport == "rtmp" {
						remotes <- conn.LocalAddr().String()
					} else {
						rtmptCases++
					}
					if tc.handshake {
						if err := rawHandshake(conn); err != nil {
							t.Fatalf("handshake: %v", err)
						}
					}
					if _, err := conn.Write(tc.raw(t, r.rtmpAddr)); err != nil {
						t.Fatalf("write: %v", err)
					}
					if tc.closeWrite {
						if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
							t.Fatal(err)
						}
					}
					took, err := expectClosed(t, tc.name, conn, tc.within)
					t.Logf("closed after %v: %v", took.Round(time.Millisecond), err)
				})
			}
		}
		t.Run("unknown_message_types_are_ignored", func(t *testing.T) {
			testUnknownMessageTypes(t, r)
		})
		t.Run("publish_before_connect_go_client", func(t *testing.T) {
			c, err := rtmptest.Dial(ctx, r.rtmpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Publish("x"); err == nil {
				t.Fatalf("publish before connect succeeded")
			} else {
				t.Logf("publish before connect: %v", err)
			}
			if m, err := c.ReadMessage(); err == nil || strings.Contains(err.Error(), "deadline") {
				t.Fatalf("connection still open: message %+v, error %v", m, err)
			}
		})
	})
	close(remotes)

	// Every bad connection has a close line with a reason, and nothing panicked.
	for remote := range remotes {
		lines := logs.find(func(l map[string]any) bool { return l["message"] == "close" && l["remote"] == remote })
		if len(lines) == 0 {
			// The close line follows the socket close by a moment.
			waitFor(t, 5*time.Second, "the close log line of "+remote, func() bool {
				lines = logs.find(func(l map[string]any) bool { return l["message"] == "close" && l["remote"] == remote })
				return len(lines) > 0
			})
		}
		reason := fmt.Sprint(lines[0]["reason"])
		if reason == "" || reason == "client closed" {
			t.Errorf("close of %s: reason %q does not say what was wrong", remote, reason)
		}
	}
	// Tunnelled connections are logged with the tunnel's address: count them.
	rtmptCloses := logs.find(func(l map[string]any) bool {
		return l["message"] == "close" && l["protocol"] == "rtmpt" && l["reason"] != "client closed"
	})
	if len(rtmptCloses) < rtmptCases {
		t.Errorf("%d bad RTMPT connections, %d close log lines with a reason", rtmptCases, len(rtmptCloses))
	}
	if p := logs.find(func(l map[string]any) bool { return strings.Contains(fmt.Sprint(l["message"]), "panic") }); len(p) > 0 {
		t.Errorf("the relay recovered from panics: %v", p)
	}

	// The healthy stream was not disturbed.
	s, _ := r.stream(t, key)
	if !s.Live || s.Subscribers["rtmp"] != 1 {
		t.Errorf("healthy stream after the bad input: %+v", s)
	}
	tags := stopPub()
	t.Logf("the healthy publisher sent %d messages, %d video frames", len(tags), countVideoFrames(tags))
	res := <-read
	wantUnpublished(t, "healthy player", res)
	compareToTags(t, "healthy player", res.msgs, tags, 0)

	// And the relay still serves.
	resp, err := http.Get("http://" + r.httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
	r.connect(t, "rtmp", "live").Close()
	pub.Close()
	player.Close()
	waitFor(t, 5*time.Second, "every connection to be gone", func() bool { return r.conns(t) == 0 })
}

// testUnknownMessageTypes sends messages of types the relay does not know (and some it
// ignores: shared objects, aggregates) before connect, and then connects, publishes
// and plays on that same connection.
func testUnknownMessageTypes(t *testing.T, r *testRelay) {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	c, err := rtmptest.Dial(ctx, r.rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b []byte
	for _, typ := range []uint8{0, 7, 10, 16, 19, 22, 99, 255} {
		b = append(b, message(4, typ, []byte("not a message the relay knows"))...)
	}
	if err := c.WriteRaw(b); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect("live", "rtmp://"+r.rtmpAddr+"/live"); err != nil {
		t.Fatalf("connect after unknown message types: %v", err)
	}
	if err := c.WriteRaw(message(4, 99, binary.BigEndian.AppendUint32(nil, 42))); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("unknown-types"); err != nil {
		t.Fatalf("publish after unknown message types: %v", err)
	}
}

// dialBad opens a connection to the relay over transport for bad input: a TCP conn,
// or an RTMPT tunnel. It is closed when the test ends.
func dialBad(t *testing.T, r *testRelay, transport string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if transport == "rtmpt" {
		conn, err = tunneltest.Dial(ctx, "http://"+r.httpAddr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", r.rtmpAddr)
	}
	if err != nil {
		t.Fatalf("%s dial: %v", transport, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// conns returns the relay's count of RTMP connections from /api/streams.
func (r *testRelay) conns(t *testing.T) int { return r.api(t).Conns }
