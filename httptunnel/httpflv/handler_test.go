package httpflv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// Test media: FLV tag bodies as the RTMP server puts them in packets.
var (
	metadata  = []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 8, 0, 0, 0, 0, 0, 0, 9}
	videoSeq  = []byte{0x17, 0, 0, 0, 0, 1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x4d, 0x40, 0x1e, 1, 0, 2, 0x68, 0xee}
	audioSeq  = []byte{0xaf, 0, 0x12, 0x10}
	keyframe  = []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88}
	interNALU = []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a}
	aacFrame  = []byte{0xaf, 1, 0x21, 0x10}
)

type env struct {
	hub *relay.Hub
	h   *Handler
	srv *httptest.Server
}

func newEnv(t testing.TB, hcfg relay.Config, cfg Config) *env {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	hub, err := relay.New(hcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		srv.Close()
	})
	return &env{hub: hub, h: h, srv: srv}
}

func publish(t testing.TB, hub *relay.Hub, key string) *relay.Publisher {
	t.Helper()
	p, err := hub.Publish(key, relay.PublisherInfo{Protocol: "test", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p.WritePacket(&relay.Packet{Kind: relay.KindMetadata, Payload: metadata})
	p.WritePacket(&relay.Packet{Kind: relay.KindVideo, SeqHeader: true, Keyframe: true, Payload: videoSeq})
	p.WritePacket(&relay.Packet{Kind: relay.KindAudio, SeqHeader: true, Payload: audioSeq})
	return p
}

func get(t testing.TB, e *env, path string) *http.Response {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestViewer checks the order a viewer gets: FLV header, onMetaData, sequence headers,
// the cached GOP from its keyframe, then live tags, with rebased timestamps.
func TestViewer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, relay.Config{}, Config{})
	p := publish(t, e.hub, "live/x")
	p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Timestamp: 1000, Keyframe: true, Payload: keyframe})
	p.WritePacket(&relay.Packet{Kind: relay.KindAudio, Timestamp: 1010, Payload: aacFrame})
	resp := get(t, e, "/live/x.flv")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Timestamp: 1040, Payload: interNALU})
	r := flv.NewReader(resp.Body)
	want := []struct {
		typ  flv.TagType
		ts   uint32
		data []byte
	}{
		{flv.TagScript, 0, metadata},
		{flv.TagVideo, 0, videoSeq},
		{flv.TagAudio, 0, audioSeq},
		{flv.TagVideo, 0, keyframe},
		{flv.TagAudio, 10, aacFrame},
		{flv.TagVideo, 40, interNALU},
	}
	for i, w := range want {
		tg, err := r.ReadTag()
		if err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
		if tg.Type != w.typ || tg.Timestamp != w.ts || !bytes.Equal(tg.Data, w.data) {
			t.Fatalf("tag %d: %v@%d % x, want %v@%d % x", i, tg.Type, tg.Timestamp, tg.Data, w.typ, w.ts, w.data)
		}
	}
	if e.h.Viewers() != 1 {
		t.Errorf("Viewers() = %d, want 1", e.h.Viewers())
	}
	if st, _ := e.hub.Stream("live/x"); st.Subscribers[Protocol] != 1 {
		t.Errorf("hub subscribers %v", st.Subscribers)
	}
}

func TestNotFoundAndCodec(t *testing.T) {
	t.Parallel()
	e := newEnv(t, relay.Config{}, Config{})
	p := publish(t, e.hub, "live/hevc")
	p.SetMediaInfo(relay.MediaInfo{VideoCodec: "H265", AudioCodec: "AAC"})
	for path, want := range map[string]int{"/live/x.mp4": 404, "/live/.flv": 404, "/live/hevc.flv": 415} {
		if resp := get(t, e, path); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// handlerGoroutines returns the stacks of goroutines running this package's code.
func handlerGoroutines() string {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var out []string
	for g := range strings.SplitSeq(buf.String(), "\n\n") {
		if (strings.Contains(g, "httptunnel/httpflv.(*Handler)") || strings.Contains(g, "httptunnel/httpflv.(*output)")) &&
			!strings.Contains(g, "handlerGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func waitNoGoroutines(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := handlerGoroutines()
		if g == "" && e.h.Viewers() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers left; goroutines still running:\n%s", e.h.Viewers(), g)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDisconnectFreesEverything has viewers leave mid-stream, while media flows and
// while it does not: every handler and reader goroutine ends, the hub forgets the
// subscribers. Not parallel: it inspects every goroutine of the process.
func TestDisconnectFreesEverything(t *testing.T) {
	e := newEnv(t, relay.Config{}, Config{})
	p := publish(t, e.hub, "live/leak")
	p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Timestamp: 0, Keyframe: true, Payload: keyframe})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ts := int64(40); ; ts += 40 {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Timestamp: ts, Payload: interNALU})
		}
	}()
	for i := range 20 {
		c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /live/leak.flv HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		if _, err := br.Peek(200); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		if i%2 == 1 {
			c.(*net.TCPConn).CloseWrite() // half close: the reader sees EOF first
		}
		c.Close()
	}
	close(stop)
	<-done
	// With no media flowing, only the reader goroutine can notice the next one leave.
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /live/leak.flv HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := bufio.NewReader(c).Peek(100); err != nil {
		t.Fatal(err)
	}
	// A viewer that waits holds no goroutine: ServeHTTP returned, its output runs only
	// when there is something to write, its reader is parked on the poller.
	waitFor(t, func() bool { return e.h.Viewers() == 1 && handlerGoroutines() == "" })
	c.Close()
	waitNoGoroutines(t, e)
	if st, _ := e.hub.Stream("live/leak"); st.Subscribers[Protocol] != 0 {
		t.Errorf("hub still has subscribers %v", st.Subscribers)
	}
}

// stalledViewer connects a client that sends its request and never reads.
func stalledViewer(t *testing.T, e *env, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	return c
}

// TestSlowViewerEvicted: a viewer that stops reading falls behind, the hub evicts it
// after SlowGrace, and its goroutines end; memory is bounded by the hub's queue.
func TestSlowViewerEvicted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, relay.Config{QueuePackets: 32, QueueBytes: 1 << 20, SlowGrace: 100 * time.Millisecond}, Config{WriteTimeout: time.Hour})
	p := publish(t, e.hub, "live/slow")
	stalledViewer(t, e, "/live/slow.flv")
	waitFor(t, func() bool { return e.h.Viewers() == 1 })
	big := append(bytes.Clone(interNALU), make([]byte, 64<<10)...)
	bigKey := append(bytes.Clone(keyframe), make([]byte, 64<<10)...)
	for ts := int64(0); e.h.Viewers() == 1 && ts < 1e6; ts += 40 {
		pl := big
		if ts%2000 == 0 {
			pl = bigKey
		}
		p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Timestamp: ts, Keyframe: ts%2000 == 0, Payload: pl})
		time.Sleep(time.Millisecond)
	}
	waitFor(t, func() bool { return e.h.Viewers() == 0 })
	if st, _ := e.hub.Stream("live/slow"); st.Evicted != 1 {
		t.Errorf("evicted %d, want 1", st.Evicted)
	}
}

// TestStalledWriteTimesOut: a viewer whose socket stays full is dropped by the write
// deadline, before the hub would evict it.
func TestStalledWriteTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, relay.Config{QueueBytes: 64 << 20, SlowGrace: time.Hour}, Config{WriteTimeout: 200 * time.Millisecond})
	p := publish(t, e.hub, "live/stall")
	stalledViewer(t, e, "/live/stall.flv")
	waitFor(t, func() bool { return e.h.Viewers() == 1 })
	big := append(bytes.Clone(keyframe), make([]byte, 1<<20)...)
	for i := range 40 { // 40 MiB: far more than the socket buffers hold
		p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Timestamp: int64(i) * 40, Keyframe: true, Payload: big})
	}
	waitFor(t, func() bool { return e.h.Viewers() == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestImports enforces doc.go: no rtmp, no go-rtmp; of mtrelay only relay,
// relay/netio and httptunnel/flv.
func TestImports(t *testing.T) {
	t.Parallel()
	for _, dep := range relaytest.Deps(t, ".") {
		if strings.Contains(dep, "go-rtmp") || strings.HasPrefix(dep, "github.com/mtrelay/mtrelay/") &&
			dep != "github.com/mtrelay/mtrelay/relay" && dep != "github.com/mtrelay/mtrelay/relay/netio" &&
			dep != "github.com/mtrelay/mtrelay/httptunnel/flv" && dep != "github.com/mtrelay/mtrelay/httptunnel/httpflv" {
			t.Errorf("httpflv depends on %s", dep)
		}
	}
}

// TestCodecFoundAfterJoin: a viewer that joined before the publisher, so before the
// codecs were known, got 200; when the publisher's packets show MP3 audio, its
// chunked response ends cleanly after what came before, and the viewer is gone.
func TestCodecFoundAfterJoin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, relay.Config{}, Config{})
	resp := get(t, e, "/live/late.flv")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the viewer", func() bool { return e.h.Viewers() == 1 })
	p, err := e.hub.Publish("live/late", relay.PublisherInfo{Protocol: "test", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.WritePacket(&relay.Packet{Kind: relay.KindVideo, SeqHeader: true, Keyframe: true, Payload: videoSeq})
	p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Keyframe: true, Payload: keyframe})
	p.WritePacket(&relay.Packet{Kind: relay.KindAudio, Payload: []byte{0x2f, 0xff, 0xfb, 0x90, 0x00}}) // MP3
	r := flv.NewReader(resp.Body)
	var tags []flv.TagType
	for {
		tg, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d tags: %v, want a clean end of the response", len(tags), err)
		}
		tags = append(tags, tg.Type)
	}
	if len(tags) != 2 || tags[0] != flv.TagVideo || tags[1] != flv.TagVideo {
		t.Errorf("got tags %v, want the two H.264 video tags before the MP3 audio", tags)
	}
	waitFor("the viewer to leave", func() bool {
		st, _ := e.hub.Stream("live/late")
		return e.h.Viewers() == 0 && st.Subscribers[Protocol] == 0
	})
}
