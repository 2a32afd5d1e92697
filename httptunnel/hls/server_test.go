package hls

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv/flvtest"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/relaytest"
)

func newServer(t testing.TB, cfg Config) (*relay.Hub, *Server, *httptest.Server) {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	hub, err := relay.New(relay.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return hub, s, srv
}

func fetch(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMuxerLifecycle: 404 before the stream is live; the first playlist request
// starts a muxer whose playlists, init file and segments are served; distinct clients
// count as viewers in the hub's stats; the muxer is freed when idle.
func TestMuxerLifecycle(t *testing.T) {
	t.Parallel()
	hub, s, srv := newServer(t, Config{IdleTimeout: 1500 * time.Millisecond, ViewerWindow: time.Hour})
	if code, _ := fetch(t, srv.URL+"/live/x/index.m3u8"); code != 404 {
		t.Fatalf("before publish: %d, want 404", code)
	}
	pub, err := hub.Publish("live/x", relay.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pkts := flvtest.FixturePackets(t)
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { // feed at 4x real time
		defer close(fed)
		start := time.Now()
		for _, p := range pkts {
			if d := time.Duration(p.Timestamp)*time.Millisecond/4 - time.Since(start); d > 0 {
				select {
				case <-stop:
					return
				case <-time.After(d):
				}
			}
			pub.WritePacket(p)
		}
	}()
	defer func() { close(stop); <-fed }()

	code, body := fetch(t, srv.URL+"/live/x/index.m3u8", "User-Agent", "a")
	if code != 200 || !strings.Contains(body, `CODECS="avc1.4d401e,mp4a.40.2"`) {
		t.Fatalf("index.m3u8: %d\n%s", code, body)
	}
	code, media := fetch(t, srv.URL+"/live/x/video1_stream.m3u8", "User-Agent", "b")
	if code != 200 || !strings.Contains(media, "#EXT-X-PART:") || !strings.Contains(media, "#EXT-X-MAP:URI=") {
		t.Fatalf("media playlist: %d\n%s", code, media)
	}
	// The init file and every part listed are served.
	for _, line := range strings.Split(media, "\n") {
		for _, attr := range []string{`#EXT-X-MAP:URI="`, `URI="`} {
			if i := strings.Index(line, attr); i >= 0 && !strings.Contains(line, "PRELOAD-HINT") {
				name := line[i+len(attr):]
				name = name[:strings.IndexByte(name, '"')]
				if c, b := fetch(t, srv.URL+"/live/x/"+name); c != 200 || len(b) == 0 {
					t.Errorf("GET %s: %d, %d bytes", name, c, len(b))
				}
				break
			}
		}
	}
	if c, _ := fetch(t, srv.URL+"/live/x/nothing.mp4"); c != 404 {
		t.Errorf("unknown file: %d, want 404", c)
	}
	st, _ := hub.Stream("live/x")
	if st.Subscribers[Protocol] != 3 || s.Viewers("live/x") != 3 { // "a", "b" and Go's own user agent
		t.Errorf("hls viewers: stats %v, Viewers %d; want 3", st.Subscribers, s.Viewers("live/x"))
	}
	if s.Muxers() != 1 {
		t.Fatalf("muxers %d, want 1", s.Muxers())
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Muxers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("muxer not freed after IdleTimeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := hub.Stream("live/x"); st.Subscribers[Protocol] != 0 {
		t.Errorf("hub still counts %v", st.Subscribers)
	}
}

func TestUnsupportedCodec(t *testing.T) {
	t.Parallel()
	hub, _, srv := newServer(t, Config{})
	pub, err := hub.Publish("live/mp3", relay.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.SetMediaInfo(relay.MediaInfo{VideoCodec: "H264", AudioCodec: "MP3"})
	if code, body := fetch(t, srv.URL+"/live/mp3/index.m3u8"); code != 415 || !strings.Contains(body, "AAC") {
		t.Fatalf("%d %q, want 415", code, body)
	}
	// Found only in the packets: the muxer fails and requests get 415 too.
	pub2, err := hub.Publish("live/mp3b", relay.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub2.Close()
	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() { // no t.Fatal off the test goroutine
		resp, err := http.Get(srv.URL + "/live/mp3b/index.m3u8")
		if err != nil {
			res <- result{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b)}
	}()
	for ts := int64(0); ; ts += 26 {
		select {
		case r := <-res:
			if r.code != 415 {
				t.Fatalf("%d %q, want 415", r.code, r.body)
			}
			return
		case <-time.After(10 * time.Millisecond):
			pub2.WritePacket(&relay.Packet{Kind: relay.KindAudio, Timestamp: ts, Payload: []byte{0x2f, 0xff, 0xfb}})
		}
	}
}

// BenchmarkMuxer measures the HLS muxing cost of one stream: hub packets of the
// fixture (H.264 640x360 25 fps + AAC) through the FLV parsing and gohlslib's LL-HLS
// fMP4 muxer, per packet.
func BenchmarkMuxer(b *testing.B) {
	pkts := flvtest.FixturePackets(b)
	var bytesIn int
	for _, p := range pkts {
		bytesIn += len(p.Payload)
	}
	s := &Server{cfg: Config{}, log: zerolog.Nop()}
	s.cfg, _ = s.cfg.withDefaults()
	b.ReportAllocs()
	b.SetBytes(int64(bytesIn / len(pkts)))
	var m *muxer
	var base int64
	i := 0
	for b.Loop() {
		if i%len(pkts) == 0 {
			if m == nil || i > 0 && m.mux == nil {
				m = &muxer{s: s, e: &entry{ready: make(chan struct{})}, log: zerolog.Nop()}
			}
			if i > 0 {
				base += 10_040
			}
		}
		p := pkts[i%len(pkts)]
		if i >= len(pkts) && p.SeqHeader {
			i++
			continue
		}
		if err := m.frame(relay.Frame{Packet: p, Timestamp: base + p.Timestamp}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	if m.mux != nil {
		m.mux.Close()
	}
	if n := m.encodeErrs.Load(); n > 0 {
		b.Fatalf("%d encode errors", n)
	}
}

// TestImports enforces doc.go: no rtmp, no go-rtmp.
func TestImports(t *testing.T) {
	t.Parallel()
	relaytest.CheckDeps(t, "hls",
		"github.com/mtrelay/mtrelay/relay",
		"github.com/mtrelay/mtrelay/httptunnel/flv",
		"github.com/mtrelay/mtrelay/httptunnel/hls")
}

// TestMuxerPanic: a panic in a muxer's goroutine (injected at the first H.264 access
// unit) ends only that muxer: it is counted, the waiting request gets 503 instead of
// hanging, a running muxer of another stream keeps serving, and the next request
// starts a new muxer for the stream.
func TestMuxerPanic(t *testing.T) {
	t.Parallel()
	hub, s, srv := newServer(t, Config{})
	var armed atomic.Bool
	s.testHookFrame = func(key string, f relay.Frame) {
		if key == "live/bad" && f.Packet.Kind == relay.KindVideo && !f.Packet.SeqHeader && armed.CompareAndSwap(true, false) {
			panic("injected")
		}
	}
	pkts := flvtest.FixturePackets(t)
	var pubs []*relay.Publisher
	for _, key := range []string{"live/ok", "live/bad"} {
		pub, err := hub.Publish(key, relay.PublisherInfo{Protocol: "test"})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		pubs = append(pubs, pub)
	}
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { // feed both streams at 4x real time, the fixture in a loop
		defer close(fed)
		start := time.Now()
		for loop := int64(0); ; loop++ {
			for _, p := range pkts {
				ts := loop*10_000 + p.Timestamp
				if d := time.Duration(ts)*time.Millisecond/4 - time.Since(start); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				}
				if loop > 0 && p.SeqHeader {
					continue
				}
				q := &relay.Packet{Kind: p.Kind, Timestamp: ts, Keyframe: p.Keyframe, SeqHeader: p.SeqHeader, Payload: p.Payload}
				for _, pub := range pubs {
					pub.WritePacket(q)
				}
			}
		}
	}()
	defer func() { close(stop); <-fed }()
	if code, body := fetch(t, srv.URL+"/live/ok/index.m3u8"); code != 200 {
		t.Fatalf("live/ok: %d %s", code, body)
	}
	armed.Store(true)
	if code, body := fetch(t, srv.URL+"/live/bad/index.m3u8"); code != http.StatusServiceUnavailable || !strings.Contains(body, "panicked") {
		t.Fatalf("live/bad with a panicking muxer: %d %q, want 503", code, body)
	}
	if s.Panics() != 1 {
		t.Errorf("Panics() = %d, want 1", s.Panics())
	}
	for deadline := time.Now().Add(10 * time.Second); s.Muxers() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("muxers %d, want 1 (live/ok)", s.Muxers())
		}
	}
	for _, key := range []string{"live/ok", "live/bad"} {
		if code, body := fetch(t, srv.URL+"/"+key+"/index.m3u8"); code != 200 {
			t.Errorf("%s after the panic: %d %s", key, code, body)
		}
	}
}
