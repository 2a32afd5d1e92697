package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestFFmpegRTMPTThroughSquid publishes and plays with ffmpeg over plain RTMPT through
// squid (http_proxy; ffmpeg's http.c has no implicit no_proxy for 127.0.0.1, so the
// loopback relay is proxied), with an RTMP player mixed in, and checks from squid's
// access log that /open/1, /send and /idle went through it.
//
// The publisher keeps ffmpeg's default -rtmp_flush_interval 10: with 1, every packet
// is one POST, and through squid each POST costs ~40 ms (ffmpeg writes headers and body
// in two segments without TCP_NODELAY, and squid's kernel delays the ACK the body
// waits for), so a 10 s file takes 30 s. The last few packets are then lost, as
// ffmpeg discards its buffer on close; flowSpec.flushDefault allows that.
func TestFFmpegRTMPTThroughSquid(t *testing.T) {
	t.Parallel()
	squid := tunneltest.StartSquid(t)
	r := startExtRelay(t, extOptions{})
	env := []string{"http_proxy=" + squid.URL(), "no_proxy=", "NO_PROXY="}
	f := startFlow(t, r, flowSpec{key: "live/proxied", pub: "rtmpt", players: []string{"rtmpt", "rtmp"}, env: env, flushDefault: true})
	f.check(t)
	base := "http://" + r.httpAddr
	for _, path := range []string{"/open/1", "/send/", "/idle/", "/close/"} {
		squid.WaitAccessLog(t, "POST "+base+path)
	}
}

// TestPipelinedClient publishes the fixture with a librtmp-style client (every POST
// written before the previous reply is read, one keep-alive connection) and plays it
// with another one and with ffmpeg over RTMPT and RTMP; every frame arrives and decodes.
func TestPipelinedClient(t *testing.T) {
	t.Parallel()
	r := startExtRelay(t, extOptions{})
	const key = "live/pipelined"
	base := "http://" + r.httpAddr
	goPlayer := dialRTMPT(t, base, tunneltest.Pipelined())
	if err := goPlayer.Play("pipelined"); err != nil {
		t.Fatalf("pipelined play: %v", err)
	}
	f := startFlowPlayers(t, r, flowSpec{key: key, pub: "pipelined", players: []string{"rtmpt", "rtmp"}}, map[string]int{"rtmpt": 2, "rtmp": 1})

	tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	pub := dialRTMPT(t, base, tunneltest.Pipelined())
	if err := pub.Publish("pipelined"); err != nil {
		t.Fatalf("pipelined publish: %v", err)
	}
	setDataFrame, err := rtmptest.EncodeAMF0("@setDataFrame")
	if err != nil {
		t.Fatal(err)
	}
	var media []rtmptest.FLVTag
	for _, tg := range tags {
		payload := tg.Payload
		if tg.TypeID == rtmptest.TypeData { // as ffmpeg publishes onMetaData
			payload = append(setDataFrame[:len(setDataFrame):len(setDataFrame)], payload...)
		} else {
			media = append(media, tg)
		}
		if err := pub.WriteMedia(tg.TypeID, tg.Timestamp, payload); err != nil {
			t.Fatalf("pipelined publisher: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i, want := range media {
		m, err := goPlayer.ReadMedia(ctx)
		for err == nil && m.TypeID == rtmptest.TypeData {
			m, err = goPlayer.ReadMedia(ctx)
		}
		if err != nil {
			t.Fatalf("pipelined player: message %d of %d: %v", i, len(media), err)
		}
		if m.TypeID != want.TypeID || !bytes.Equal(m.Payload, want.Payload) {
			t.Fatalf("pipelined player: message %d differs", i)
		}
	}
	if err := pub.CloseStream(); err != nil {
		t.Fatal(err)
	}
	pub.Close() // the pipelined conn sends /close without reading its reply
	f.check(t)
}

// dialRTMPT opens an RTMPT tunnel with tunneltest.Dial, runs the RTMP handshake and
// connect over it, and closes it when the test ends.
func dialRTMPT(t *testing.T, base string, opts ...tunneltest.Option) *rtmptest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := tunneltest.Dial(ctx, base, opts...)
	if err != nil {
		t.Fatalf("rtmpt dial %s: %v", base, err)
	}
	c, err := rtmptest.NewClientContext(ctx, conn)
	if err != nil {
		t.Fatalf("rtmpt handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect("live", strings.Replace(base, "http", "rtmpt", 1)+"/live"); err != nil {
		t.Fatalf("rtmpt connect: %v", err)
	}
	return c
}

// startFlowPlayers starts spec's ffmpeg players only (the publisher is the test's) and
// waits until the stream counts want subscribers per protocol.
func startFlowPlayers(t *testing.T, r *extRelay, spec flowSpec, want map[string]int) *flow {
	t.Helper()
	f := &flow{spec: spec}
	dir := t.TempDir()
	for i, tr := range spec.players {
		out := fmt.Sprintf("%s/player%d-%s.flv", dir, i, tr)
		f.outs = append(f.outs, out)
		f.players = append(f.players, rtmptest.StartRecorder(t, r.url(tr, spec.key), out, rtmptest.RecordOptions{Env: spec.env}))
	}
	waitFor(t, 20*time.Second, "players of "+spec.key+" subscribed", func() bool {
		s, ok := r.stream(t, spec.key)
		if !ok {
			return false
		}
		for tr, n := range want {
			if s.Subscribers[tr] != n {
				return false
			}
		}
		return true
	})
	return f
}

// post sends one RTMPT request as ffmpeg does and returns the status and body.
func post(t *testing.T, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header["Content-type"] = []string{"application/x-fcs"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read: %v", url, err)
	}
	return resp.StatusCode, b
}

// openTunnel opens a tunnel with raw requests and returns its id.
func openTunnel(t *testing.T, base string) string {
	t.Helper()
	code, b := post(t, base+"/open/1", []byte{0})
	if code != http.StatusOK || len(b) < 2 || b[len(b)-1] != '\n' {
		t.Fatalf("/open/1: %d %q", code, b)
	}
	return string(b[:len(b)-1])
}

// tunnels returns /api/streams' rtmpt_tunnels.
func (r *extRelay) tunnels(t *testing.T) int { return r.api(t).Tunnels }

// TestRTMPTBadInput sends bad RTMPT input to the real relay while an ffmpeg RTMPT
// stream flows through it: each bad request gets its error, each bad tunnel ends and
// frees its resources, and the healthy stream loses no frame.
func TestRTMPTBadInput(t *testing.T) {
	t.Parallel()
	r := startExtRelay(t, extOptions{}, func(c *Config) { c.TunnelIdleTimeout = 2 * time.Second })
	base := "http://" + r.httpAddr
	healthy := startFlow(t, r, flowSpec{key: "live/healthy", pub: "rtmpt", players: []string{"rtmpt"}})

	t.Run("unknown id", func(t *testing.T) {
		var b [16]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		for _, cmd := range []string{"send", "idle", "close"} {
			if code, _ := post(t, base+"/"+cmd+"/"+id+"/0", []byte{0}); code != http.StatusNotFound {
				t.Errorf("/%s on an unknown id: %d, want 404", cmd, code)
			}
		}
	})

	t.Run("seq replay", func(t *testing.T) {
		id := openTunnel(t, base)
		c0c1 := make([]byte, 1537)
		c0c1[0] = 3
		code, s012 := post(t, base+"/send/"+id+"/0", c0c1)
		if code != http.StatusOK || len(s012) != 1+3073 {
			t.Fatalf("/send C0+C1: %d, %d bytes, want 200 and the polling byte + S0+S1+S2", code, len(s012))
		}
		// The replay gets the same reply and its (different) body is not fed.
		code, again := post(t, base+"/send/"+id+"/0", []byte("garbage that must not be parsed"))
		if code != http.StatusOK || !bytes.Equal(again, s012) {
			t.Fatalf("replayed /send/0: %d, %d bytes, want 200 and the first reply again", code, len(again))
		}
		// Far ahead of sequence: refused at once.
		if code, _ := post(t, base+"/idle/"+id+"/1000", []byte{0}); code != http.StatusBadRequest {
			t.Errorf("/idle/1000 after /send/0: %d, want 400", code)
		}
		// The tunnel still works: C2 completes the handshake, so the RTMP side did
		// not see the replayed garbage (it would have failed the handshake's C2 check
		// or the chunk parser and ended the tunnel).
		c2 := make([]byte, 1536)
		if code, b := post(t, base+"/send/"+id+"/1", c2); code != http.StatusOK || len(b) < 1 {
			t.Fatalf("/send C2: %d %q", code, b)
		}
		if code, b := post(t, base+"/idle/"+id+"/2", []byte{0}); code != http.StatusOK || len(b) != 1 {
			t.Fatalf("/idle after C2: %d %q, want 200 and the polling byte alone", code, b)
		}
		if code, b := post(t, base+"/close/"+id+"/3", []byte{0}); code != http.StatusOK || !bytes.Equal(b, []byte{0}) {
			t.Fatalf("/close: %d %q, want 200 and 0x00", code, b)
		}
		if code, _ := post(t, base+"/idle/"+id+"/4", []byte{0}); code != http.StatusNotFound {
			t.Errorf("/idle after /close: %d, want 404", code)
		}
	})

	t.Run("huge body", func(t *testing.T) {
		id := openTunnel(t, base)
		huge := make([]byte, 2<<20) // --rtmpt-max-body defaults to 1 MiB
		if code, _ := post(t, base+"/send/"+id+"/0", huge); code != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB /send: %d, want 413", code)
		}
		post(t, base+"/close/"+id+"/1", []byte{0})
	})

	t.Run("garbage rtmp", func(t *testing.T) {
		id := openTunnel(t, base)
		c0c1 := make([]byte, 1537)
		c0c1[0] = 3
		if code, _ := post(t, base+"/send/"+id+"/0", c0c1); code != http.StatusOK {
			t.Fatalf("/send C0+C1: %d", code)
		}
		// C2, then a chunk header announcing a 16 MiB message (above
		// --max-message-size): the RTMP side must give up on this connection.
		garbage := append(make([]byte, 1536), 0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0)
		garbage = append(garbage, bytes.Repeat([]byte{0xee}, 200)...)
		code, _ := post(t, base+"/send/"+id+"/1", garbage)
		if code != http.StatusOK && code != http.StatusNotFound {
			t.Fatalf("/send garbage: %d, want 200 (or 404 if the tunnel already ended)", code)
		}
		// The tunnel ends: soon every request gets 404.
		seq := 2
		waitFor(t, 5*time.Second, "garbage tunnel to end", func() bool {
			code, _ := post(t, fmt.Sprintf("%s/idle/%s/%d", base, id, seq), []byte{0})
			seq++
			return code == http.StatusNotFound
		})
		waitFor(t, 5*time.Second, "the RTMP side to log the error", func() bool {
			for line := range strings.SplitSeq(r.logs.String(), "\n") {
				if strings.Contains(line, `"protocol":"rtmpt"`) && strings.Contains(line, `"message":"close"`) &&
					strings.Contains(line, chunk.ErrMessageTooLarge.Error()) {
					return true
				}
			}
			return false
		})
	})

	t.Run("abandoned publisher", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		conn, err := tunneltest.Dial(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		c, err := rtmptest.NewClientContext(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Connect("live", "rtmpt://"+r.httpAddr+"/live"); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish("abandoned"); err != nil {
			t.Fatal(err)
		}
		tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags[:50] {
			if tg.TypeID != rtmptest.TypeData {
				if err := c.WriteMedia(tg.TypeID, tg.Timestamp, tg.Payload); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitFor(t, 5*time.Second, "abandoned stream live", func() bool {
			s, ok := r.stream(t, "live/abandoned")
			return ok && s.Live && s.BytesIn > 0
		})
		conn.Abandon() // no /close: only the idle timeout (2 s) can end it
		waitFor(t, 10*time.Second, "abandoned publish to end", func() bool {
			s, ok := r.stream(t, "live/abandoned")
			return !ok || !s.Live
		})
	})

	healthy.check(t)
	waitFor(t, 10*time.Second, "rtmpt_tunnels back to 0", func() bool { return r.tunnels(t) == 0 })
	if s, ok := r.stream(t, "live/healthy"); ok && s.Live {
		t.Errorf("live/healthy still live after its publisher ended")
	}
}
