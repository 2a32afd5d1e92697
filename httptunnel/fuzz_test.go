package httptunnel

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// fuzzHandler echoes, and reacts to marker bytes: 0xFF closes the conn, 0xFE writes
// more than MaxPending (the Write blocks), 0xFD panics.
func fuzzHandler(ctx context.Context, c net.Conn) {
	buf := make([]byte, 128)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		switch {
		case bytes.IndexByte(buf[:n], 0xFF) >= 0:
			c.Close()
			return
		case bytes.IndexByte(buf[:n], 0xFE) >= 0:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(make([]byte, 1000)); err != nil {
				return
			}
		case bytes.IndexByte(buf[:n], 0xFD) >= 0:
			panic("fuzz handler panic")
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

var fuzzMethods = []string{"POST", "POST", "POST", "GET", "PUT", "HEAD", "POST", "OPTIONS"}
var fuzzTypes = []string{fcs, fcs, fcs, "", "text/plain", "APPLICATION/X-FCS; q=1", fcs, "application/x-fcsx"}

// FuzzTunnelHandler runs random request sequences (method, path, content type, body,
// chunked or not) against a Server and checks that it never panics, that every status
// is one of the documented ones, that send/idle replies are never empty and carry an
// exact Content-Length, and that Close ends everything.
//
// Script format, 4 bytes per request: op, flags, seq, body length (then the body).
func FuzzTunnelHandler(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 1, 0, 0, 3, 'a', 'b', 'c', 2, 0, 1, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 1, 0xFE, 2, 0, 1, 0, 2, 0, 2, 0, 2, 0, 3, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 1, 'x', 1, 0, 1, 1, 'y', 1, 0, 0, 1, 'z', 3, 0, 9, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0xFF, 2, 0, 1, 0})
	f.Add([]byte{4, 0, 0, 9, '/', 's', 'e', 'n', 'd', '/', 'x', '/', '1', 5, 3, 0, 0, 6, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 8, 0, 70, 0xFD})
	f.Fuzz(func(t *testing.T, script []byte) {
		synctest.Test(t, func(t *testing.T) {
			cfg := Config{MaxBodyBytes: 64, MaxTunnels: 3, MaxTunnelsPerIP: 2, MaxPending: 256, ReplyMaxBytes: 100}
			s, err := New(cfg, zerolog.Nop(), ConnHandlerFunc(fuzzHandler))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for len(script) >= 4 {
				op, flags, seq, n := script[0], script[1], uint64(script[2]), int(script[3])
				script = script[4:]
				n = min(n, len(script))
				body := script[:n]
				script = script[n:]

				var cmd command
				var p string
				id := "0123456789abcdef0123456789abcdef"
				if len(ids) > 0 {
					id = ids[int(seq>>4)%len(ids)]
				}
				switch op % 8 {
				case 0:
					p = "/open/1"
				case 1:
					cmd, p = cmdSend, path(cmdSend, id, seq&15)
				case 2:
					cmd, p = cmdIdle, path(cmdIdle, id, seq&15)
				case 3:
					cmd, p = cmdClose, path(cmdClose, id, seq&15)
				case 4:
					p = string(body)
				case 5:
					p = "/fcs/ident2"
				case 6:
					p = "/send/" + id + "/" + strconv.Itoa(int(int8(seq)))
				case 7:
					cmd, p = cmdSend, path(cmdSend, strings.ToUpper(id), seq)
				}
				r := &http.Request{
					Method:     fuzzMethods[flags&7],
					URL:        &url.URL{Path: p},
					Proto:      "HTTP/1.1",
					ProtoMajor: 1, ProtoMinor: 1,
					Header:        http.Header{},
					Body:          io.NopCloser(bytes.NewReader(body)),
					ContentLength: int64(len(body)),
					RemoteAddr:    "10.0.0." + strconv.Itoa(int(flags>>6)) + ":1",
				}
				if flags&8 != 0 {
					r.ContentLength = -1
				}
				if ct := fuzzTypes[(flags>>3)&7]; ct != "" {
					r.Header.Set("Content-Type", ct)
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				switch w.Code {
				case 200:
					if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
						t.Fatalf("%s %s: Content-Length %q for %d bytes", r.Method, p, cl, w.Body.Len())
					}
					if (cmd == cmdSend || cmd == cmdIdle) && (w.Body.Len() == 0 || w.Body.Len() > 1+cfg.ReplyMaxBytes) {
						t.Fatalf("%s %s: reply of %d bytes", r.Method, p, w.Body.Len())
					}
					if p == "/open/1" {
						got, ok := strings.CutSuffix(w.Body.String(), "\n")
						if !ok || len(got) != 32 {
							t.Fatalf("open reply %q", w.Body.String())
						}
						ids = append(ids, got)
					}
				case 400, 404, 405, 413, 503:
				default:
					t.Fatalf("%s %q: status %d", r.Method, p, w.Code)
				}
			}
			if err := s.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n := s.Tunnels(); n != 0 {
				t.Fatalf("Tunnels() after Close = %d", n)
			}
		})
	})
}
