package player

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/httptunnel/flv/flvtest"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestFMP4DecodesEveryFrame muxes the fixture and has ffprobe count the frames: all
// but the last of each track, which waits for its successor to know its duration.
func TestFMP4DecodesEveryFrame(t *testing.T) {
	t.Parallel()
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Fatal("ffprobe not found: install Debian's ffmpeg package (make test-deps)")
	}
	var m muxer
	var out bytes.Buffer
	var video, audio int
	for _, p := range flvtest.FixturePackets(t) {
		if !p.SeqHeader {
			if p.Kind == relay.KindVideo {
				if v, _ := flv.ParseVideo(p.Payload); v.PacketType == flv.AVCNALU {
					video++ // not the end-of-sequence tag
				}
			} else if p.Kind == relay.KindAudio {
				audio++
			}
		}
		ready, err := m.frame(relay.Frame{Packet: p, Timestamp: p.Timestamp})
		if err != nil {
			t.Fatal(err)
		}
		if ready {
			init, err := m.init()
			if err != nil {
				t.Fatal(err)
			}
			out.Write(init)
		}
		frag, err := m.fragment()
		if err != nil {
			t.Fatal(err)
		}
		out.Write(frag)
	}
	if got := m.codecs(); got != "avc1.4d401e,mp4a.40.2" {
		t.Errorf("codecs %q", got)
	}
	path := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.CommandContext(t.Context(), ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, res)
	}
	want := "h264," + strconv.Itoa(video-1) + "\naac," + strconv.Itoa(audio-1)
	if got := strings.TrimSpace(string(res)); got != want {
		t.Fatalf("ffprobe: %q, want %q", got, want)
	}
}

func newHandler(t *testing.T) (*relay.Hub, *Handler, *httptest.Server) {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	hub, err := relay.New(relay.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{RTMPPort: 1936}, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return hub, h, srv
}

// TestPageAndList checks the embedded page and the stream list.
func TestPageAndList(t *testing.T) {
	t.Parallel()
	hub, _, srv := newHandler(t)
	pub, err := hub.Publish("live/a", relay.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	resp, err := http.Get(srv.URL + "/play/live/a")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("mtrelayStats")) || bytes.Contains(page, []byte("https://")) {
		t.Fatalf("page: %d, %d bytes (must define mtrelayStats and load nothing from elsewhere)", resp.StatusCode, len(page))
	}
	resp, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, want := range []string{`href="/play/live/a"`, "rtmp://127.0.0.1:1936/live/a", "rtmpt://" + host + "/live/a",
		"http://" + host + "/live/a.flv", "http://" + host + "/live/a/index.m3u8"} {
		if !bytes.Contains(list, []byte(want)) {
			t.Errorf("list lacks %q", want)
		}
	}
}

// TestStreamEndsWithPublisher: the fMP4 response starts with ftyp and ends when the
// publisher leaves, so the page reconnects; the viewer counts as "page" meanwhile.
func TestStreamEndsWithPublisher(t *testing.T) {
	t.Parallel()
	hub, h, srv := newHandler(t)
	pub, err := hub.Publish("live/b", relay.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pkts := flvtest.FixturePackets(t)
	for _, p := range pkts[:60] {
		pub.WritePacket(p)
	}
	resp, err := http.Get(srv.URL + "/play/live/b/live.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Codecs") != "avc1.4d401e,mp4a.40.2" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	head := make([]byte, 8)
	if _, err := io.ReadFull(resp.Body, head); err != nil || string(head[4:]) != "ftyp" {
		t.Fatalf("starts % x (%v)", head, err)
	}
	if h.Viewers() != 1 {
		t.Errorf("viewers %d", h.Viewers())
	}
	if st, _ := hub.Stream("live/b"); st.Subscribers[Protocol] != 1 {
		t.Errorf("hub subscribers %v", st.Subscribers)
	}
	for _, p := range pkts[60:120] {
		pub.WritePacket(p)
	}
	pub.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

// TestImports enforces doc.go: no rtmp, no go-rtmp; relay, flv and vod (its file keys) only.
func TestImports(t *testing.T) {
	t.Parallel()
	relaytest.CheckDeps(t, "player",
		"github.com/mtrelay/mtrelay/relay",
		"github.com/mtrelay/mtrelay/httptunnel/flv",
		"github.com/mtrelay/mtrelay/httptunnel/vod",
		"github.com/mtrelay/mtrelay/httptunnel/player")
}

// TestViewerPanic: a panic while muxing one viewer's fMP4 (injected at its first
// frame) ends only that viewer: it is counted, its connection is aborted, it leaves
// the hub, and another viewer of the stream is served.
func TestViewerPanic(t *testing.T) {
	t.Parallel()
	hub, h, srv := newHandler(t)
	var armed atomic.Bool
	armed.Store(true)
	h.testHookFrame = func(relay.Frame) {
		if armed.CompareAndSwap(true, false) {
			panic("injected")
		}
	}
	pub, err := hub.Publish("live/p", relay.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, p := range flvtest.FixturePackets(t)[:60] {
		pub.WritePacket(p)
	}
	if resp, err := http.Get(srv.URL + "/play/live/p/live.mp4"); err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("the panicking viewer's response ended cleanly (%d), want it aborted", resp.StatusCode)
		}
	}
	if h.Panics() != 1 {
		t.Errorf("Panics() = %d, want 1", h.Panics())
	}
	for deadline := time.Now().Add(10 * time.Second); h.Viewers() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("viewers %d, want 0", h.Viewers())
		}
	}
	resp, err := http.Get(srv.URL + "/play/live/p/live.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 8)
	if _, err := io.ReadFull(resp.Body, head); err != nil || resp.StatusCode != 200 || string(head[4:]) != "ftyp" {
		t.Fatalf("next viewer: %d, starts % x (%v)", resp.StatusCode, head, err)
	}
	if st, _ := hub.Stream("live/p"); st.Subscribers[Protocol] != 1 {
		t.Errorf("hub subscribers %v, want 1 page viewer", st.Subscribers)
	}
}
