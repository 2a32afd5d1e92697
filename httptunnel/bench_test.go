package httptunnel

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkRoundTrip measures one RTMPT request and its reply over loopback HTTP/1.1
// with a raw keep-alive client (so allocations are mostly the server's):
//   - send: a /send whose body the handler echoes; the reply carries it back, after
//     the handler blocks in Read again and SendQuiet passed (quiet=off: no quiet
//     period);
//   - idle: an /idle against a handler that keeps the output queue full, as for a
//     player; each reply carries payload bytes (ReplyMaxBytes = payload,
//     MaxPending = 4 × payload).
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, quiet := range []time.Duration{-1, DefaultSendQuiet} {
			name := fmt.Sprintf("send/payload=%dK/quiet=%v", size>>10, quiet)
			if quiet < 0 {
				name = fmt.Sprintf("send/payload=%dK/quiet=off", size>>10)
			}
			b.Run(name, func(b *testing.B) {
				benchRoundTrip(b, Config{SendQuiet: quiet}, ConnHandlerFunc(echo), cmdSend, size)
			})
		}
		b.Run(fmt.Sprintf("idle/payload=%dK", size>>10), func(b *testing.B) {
			chunk := make([]byte, 4096)
			writer := ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			})
			benchRoundTrip(b, Config{ReplyMaxBytes: size, MaxPending: 4 * size}, writer, cmdIdle, size)
		})
	}
}

func benchRoundTrip(b *testing.B, cfg Config, h ConnHandler, cmd command, size int) {
	s := newServer(b, cfg, h)
	hs := httptest.NewServer(s)
	b.Cleanup(hs.Close)
	rc := dialRaw(b, hs.Listener.Addr().String())
	rc.c.SetDeadline(time.Time{})
	id := rc.open()
	body := make([]byte, size)
	if cmd == cmdIdle {
		body = body[:1]
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		rc.write(request(path(cmd, id, seq), body))
		if r := rc.readReply(); len(r) != 1+size {
			b.Fatalf("reply of %d bytes, want %d", len(r), 1+size)
		}
		seq++
	}
}
