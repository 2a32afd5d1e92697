package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// checkCodecs checks the probed streams of a played copy of the fixture: H.264 Main
// 640x360 25 fps and AAC LC 44.1 kHz stereo.
func checkCodecs(t *testing.T, input string) {
	t.Helper()
	var video, audio bool
	for _, s := range rtmptest.ProbeStreams(t, input) {
		switch s.CodecType {
		case "video":
			video = true
			if s.CodecName != "h264" || s.Profile != "Main" || s.Width != 640 || s.Height != 360 {
				t.Errorf("video stream: %s %s %dx%d, want h264 Main 640x360", s.CodecName, s.Profile, s.Width, s.Height)
			}
		case "audio":
			audio = true
			if s.CodecName != "aac" || s.SampleRate != 44100 || s.Channels != 2 {
				t.Errorf("audio stream: %s %d Hz %d ch, want aac 44100 Hz 2 ch", s.CodecName, s.SampleRate, s.Channels)
			}
		}
	}
	if !video || !audio {
		t.Errorf("%s: video %v audio %v, want both", input, video, audio)
	}
}

// TestHTTPFLVAllFrames plays the fixture over HTTP-FLV with ffmpeg, which joins before
// the publisher: it must receive every video and audio packet with its bytes, key flag
// and composition offset, decode all of them, and start on a keyframe. The stream ends
// PlayWait after the publisher leaves (the chunked body is terminated); PlayWait is 4 s
// so that a publisher slow to start on a loaded machine is still waited for.
func TestHTTPFLVAllFrames(t *testing.T) {
	t.Parallel()
	r := startRelay(t, func(c *Config) { c.PlayWait = 4 * time.Second })
	fixture := rtmptest.FixturePath(t)
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, fixture))
	out := filepath.Join(t.TempDir(), "http-flv.flv")
	url := "http://" + r.httpAddr + "/live/flv.flv"
	player := rtmptest.StartRecorder(t, url, out)
	waitFor(t, 10*time.Second, "the http-flv viewer", func() bool {
		s, ok := r.stream(t, "live/flv")
		return ok && s.Subscribers["http-flv"] == 1
	})
	pub := rtmptest.StartPublisher(t, r.url("rtmp", "live/flv"), rtmptest.PublishOptions{ReadRate: 4})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := pub.Wait(ctx); err != nil {
		t.Fatalf("publisher: %v\n%s", err, pub.Stderr())
	}
	if err := player.Wait(ctx); err != nil {
		t.Fatalf("http-flv player: %v\n%s", err, player.Stderr())
	}
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
	if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
		t.Fatalf("got %d video %d audio packets, want %d and %d", len(gotV), len(gotA), len(wantV), len(wantA))
	}
	if !gotV[0].Keyframe {
		t.Errorf("first video packet is not a keyframe")
	}
	for j := range wantV {
		g, w := gotV[j], wantV[j]
		if g.DataHash != w.DataHash || g.Keyframe != w.Keyframe || g.PTS-g.DTS != w.PTS-w.DTS {
			t.Fatalf("video packet %d: got %s key=%v cts=%d, want %s key=%v cts=%d", j, g.DataHash, g.Keyframe, g.PTS-g.DTS, w.DataHash, w.Keyframe, w.PTS-w.DTS)
		}
	}
	for j := range wantA {
		if gotA[j].DataHash != wantA[j].DataHash {
			t.Fatalf("audio packet %d differs", j)
		}
	}
	checkCodecs(t, out)
	if v, a := rtmptest.DecodeFrames(t, out); v != len(wantV) || a != len(wantA) {
		t.Errorf("decoded %d video %d audio frames, want %d and %d", v, a, len(wantV), len(wantA))
	}
}

// TestHTTPFLVHeaders checks the response of GET /{app}/{stream}.flv: status, CORS,
// chunked transfer, the FLV signature; and 404 for other files.
func TestHTTPFLVHeaders(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	rtmptest.StartPublisher(t, r.url("rtmp", "live/h"), rtmptest.PublishOptions{Loop: true})
	waitFor(t, 10*time.Second, "the publisher", func() bool { s, ok := r.stream(t, "live/h"); return ok && s.Live })
	resp, err := http.Get("http://" + r.httpAddr + "/live/h.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Content-Type") != "video/x-flv" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, headers %v, transfer %v", resp.StatusCode, resp.Header, resp.TransferEncoding)
	}
	sig := make([]byte, 13)
	if _, err := io.ReadFull(resp.Body, sig); err != nil || string(sig[:3]) != "FLV" {
		t.Fatalf("body starts % x (%v)", sig, err)
	}
	for _, p := range []string{"/live/h.mp4", "/live/h.flv.x"} {
		resp, err := http.Get("http://" + r.httpAddr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// progressReader reads a response body to its end in its own goroutine, recording
// how many bytes came and the longest wait between two reads.
type progressReader struct {
	done  chan struct{}
	bytes atomic.Int64
	last  atomic.Int64 // unix nanos of the last read
	gap   atomic.Int64 // longest wait between two reads, nanoseconds
}

// The goroutine ends when the test does: the body is closed, then waited for.
func readProgress(t *testing.T, body io.ReadCloser) *progressReader {
	p := &progressReader{done: make(chan struct{})}
	t.Cleanup(func() { body.Close(); <-p.done })
	p.last.Store(time.Now().UnixNano())
	go func() {
		defer close(p.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := body.Read(buf)
			now := time.Now().UnixNano()
			if g := now - p.last.Swap(now); g > p.gap.Load() {
				p.gap.Store(g)
			}
			p.bytes.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return p
}

// maxGap is the longest wait between two reads so far, including the current one.
func (p *progressReader) maxGap() time.Duration {
	return time.Duration(max(p.gap.Load(), time.Now().UnixNano()-p.last.Load()))
}

// stalledGET sends a GET on a connection with a tiny receive window and never reads
// the answer: its socket buffers fill within a second.
func stalledGET(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	return c
}

// Bounds of the stalled-viewer tests: the reading viewers must never wait this long
// for data, well under the 10 s write timeout that a viewer blocked behind the
// stalled one would wait, and they must keep receiving after the stalled one is gone.
const (
	maxViewerGap       = 5 * time.Second
	minBytesAfterStall = 64 << 10
)

// checkProgress checks that every reading viewer kept getting data with no gap of
// maxViewerGap or more, and receives at least minBytesAfterStall more from now on.
func checkProgress(t *testing.T, viewers map[string]*progressReader) {
	t.Helper()
	before := make(map[string]int64)
	for name, p := range viewers {
		before[name] = p.bytes.Load()
	}
	waitFor(t, 30*time.Second, "the reading viewers to go on", func() bool {
		for name, p := range viewers {
			if p.bytes.Load()-before[name] < minBytesAfterStall {
				return false
			}
		}
		return true
	})
	for name, p := range viewers {
		select {
		case <-p.done:
			t.Errorf("%s viewer: its response ended", name)
		default:
		}
		if g := p.maxGap(); g >= maxViewerGap {
			t.Errorf("%s viewer: waited %v for data, want < %v (held up by the stalled viewer?)", name, g, maxViewerGap)
		}
		t.Logf("%s viewer: %d bytes, longest wait %v", name, p.bytes.Load(), p.maxGap())
	}
}

// stalledRelay is a relay whose hub evicts a subscriber that is a second behind for
// half a second, with a looping publisher of key at 4x real time.
func stalledRelay(t *testing.T, key string) *testRelay {
	t.Helper()
	r := startRelay(t, func(c *Config) {
		c.QueuePackets = 64
		c.QueueDuration = time.Second
		c.SlowGrace = 500 * time.Millisecond
	})
	rtmptest.StartPublisher(t, r.url("rtmp", key), rtmptest.PublishOptions{Loop: true, ReadRate: 4})
	waitFor(t, 10*time.Second, "the publisher", func() bool { s, ok := r.stream(t, key); return ok && s.Live })
	return r
}

// getBody starts a GET whose body the test reads with readProgress.
func getBody(t *testing.T, url string) io.ReadCloser {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return resp.Body
}

// TestHTTPFLVStalledViewer connects an HTTP-FLV viewer that never reads: the hub
// evicts it as a slow subscriber (or its write times out) and it disappears from the
// stats, while a reading viewer of the same stream keeps receiving, never waiting
// maxViewerGap for data.
func TestHTTPFLVStalledViewer(t *testing.T) {
	t.Parallel()
	r := stalledRelay(t, "live/stall")
	stalledGET(t, r.httpAddr, "/live/stall.flv")
	good := readProgress(t, getBody(t, "http://"+r.httpAddr+"/live/stall.flv"))
	waitFor(t, 10*time.Second, "two viewers", func() bool { s, _ := r.stream(t, "live/stall"); return s.Subscribers["http-flv"] == 2 })
	waitFor(t, 30*time.Second, "the stalled viewer to be dropped", func() bool {
		s, _ := r.stream(t, "live/stall")
		return s.Subscribers["http-flv"] == 1 && s.Evicted >= 1
	})
	checkProgress(t, map[string]*progressReader{"http-flv": good})
	if s, _ := r.stream(t, "live/stall"); s.Subscribers["http-flv"] != 1 {
		t.Errorf("http-flv viewers %d, want the reading one", s.Subscribers["http-flv"])
	}
}

// TestPageStalledViewer does the same for the player page's fMP4 stream: a page
// viewer that stops reading /play/live/pstall/live.mp4 is dropped, while a reading
// page viewer and an HTTP-FLV viewer of the stream go on unaffected.
func TestPageStalledViewer(t *testing.T) {
	t.Parallel()
	r := stalledRelay(t, "live/pstall")
	stalledGET(t, r.httpAddr, "/play/live/pstall/live.mp4")
	viewers := map[string]*progressReader{
		"page":     readProgress(t, getBody(t, "http://"+r.httpAddr+"/play/live/pstall/live.mp4")),
		"http-flv": readProgress(t, getBody(t, "http://"+r.httpAddr+"/live/pstall.flv")),
	}
	waitFor(t, 10*time.Second, "the viewers", func() bool {
		s, _ := r.stream(t, "live/pstall")
		return s.Subscribers["page"] == 2 && s.Subscribers["http-flv"] == 1
	})
	waitFor(t, 30*time.Second, "the stalled page viewer to be dropped", func() bool {
		s, _ := r.stream(t, "live/pstall")
		return s.Subscribers["page"] == 1 && s.Evicted >= 1
	})
	checkProgress(t, viewers)
	if s, _ := r.stream(t, "live/pstall"); s.Subscribers["page"] != 1 || s.Subscribers["http-flv"] != 1 {
		t.Errorf("viewers %v, want the two reading ones", s.Subscribers)
	}
}

// TestHLSFrames plays the looping fixture over LL-HLS with ffmpeg: the first frame is a
// keyframe, the codec parameters are right, and the video and audio packets are a
// gap-free run of the fixture's packets (every frame, none dropped or repeated).
func TestHLSFrames(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	fixture := rtmptest.FixturePath(t)
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, fixture))
	rtmptest.StartPublisher(t, r.url("rtmp", "live/hls"), rtmptest.PublishOptions{Loop: true})
	waitFor(t, 10*time.Second, "the publisher", func() bool { s, ok := r.stream(t, "live/hls"); return ok && s.Live })

	playlist := "http://" + r.httpAddr + "/live/hls/index.m3u8"
	resp, err := http.Get(playlist)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "avc1.4d401e") || !strings.Contains(string(body), "mp4a.40.2") ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET index.m3u8: %d\n%s", resp.StatusCode, body)
	}
	out := filepath.Join(t.TempDir(), "hls.mkv")
	ffmpeg := rtmptest.RequireTool(t, "ffmpeg")
	p := rtmptest.StartProc(t, ffmpeg, []string{"-hide_banner", "-nostdin", "-loglevel", "warning",
		"-i", playlist, "-t", "6", "-c", "copy", "-y", out}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("hls player: %v\n%s", err, p.Stderr())
	}
	if s, _ := r.stream(t, "live/hls"); s.Subscribers["hls"] < 1 {
		t.Errorf("hls viewers = %d, want ≥ 1 (%v)", s.Subscribers["hls"], s.Subscribers)
	}
	checkCodecs(t, out)
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
	if len(gotV) < 100 || len(gotA) < 150 {
		t.Fatalf("got %d video %d audio packets, want ≥ 100 and ≥ 150 in 6 s", len(gotV), len(gotA))
	}
	if !gotV[0].Keyframe {
		t.Errorf("first video packet is not a keyframe")
	}
	// Keyframes carry the parameter sets in band over HLS, so their bytes differ from
	// the FLV's; every other frame must continue the fixture's sequence.
	checkRun(t, "video", gotV, wantV, func(p rtmptest.ProbePacket) bool { return !p.Keyframe })
	checkRun(t, "audio", gotA, wantA, func(rtmptest.ProbePacket) bool { return true })
	if v, a := rtmptest.DecodeFrames(t, out); v != len(gotV) || a != len(gotA) {
		t.Errorf("decoded %d video %d audio frames of %d and %d packets", v, a, len(gotV), len(gotA))
	}
}

// checkRun checks that got is a contiguous run of the looping sequence want, comparing
// the packets for which cmp is true by payload hash.
func checkRun(t *testing.T, what string, got, want []rtmptest.ProbePacket, cmp func(rtmptest.ProbePacket) bool) {
	t.Helper()
	start := -1
	for i, g := range got {
		if !cmp(g) {
			continue
		}
		for j, w := range want {
			if w.DataHash == g.DataHash {
				start = (j - i + len(want)*(i/len(want)+1)) % len(want)
				break
			}
		}
		break
	}
	if start < 0 {
		t.Fatalf("%s: no packet matches the fixture", what)
	}
	for i, g := range got {
		w := want[(start+i)%len(want)]
		if g.Keyframe != w.Keyframe || cmp(g) && g.DataHash != w.DataHash {
			t.Fatalf("%s packet %d (fixture %d): got %s key=%v, want %s key=%v: a frame was lost or repeated",
				what, i, (start+i)%len(want), g.DataHash, g.Keyframe, w.DataHash, w.Keyframe)
		}
	}
}

// TestMediaNotLive checks the answers for a stream that is not live: HLS and the
// page's stream 404, the list page says there is nothing, the player page is served.
func TestMediaNotLive(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	for path, want := range map[string]int{
		"/live/none/index.m3u8":    404,
		"/play/live/none/live.mp4": 404,
		"/play/live/none":          200,
		"/":                        200,
		"/healthz":                 200,
	} {
		resp, err := http.Get("http://" + r.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestMediaUnsupportedCodec publishes H.264 video with MP3 audio: every browser path
// answers 415 with a message.
func TestMediaUnsupportedCodec(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	rtmptest.StartPublisher(t, r.url("rtmp", "live/mp3"), rtmptest.PublishOptions{Loop: true,
		ExtraArgs: []string{"-c:a", "libmp3lame", "-ar", "44100"}})
	waitFor(t, 10*time.Second, "the publisher's codecs", func() bool {
		s, ok := r.stream(t, "live/mp3")
		return ok && s.Live && s.Media.AudioCodec != ""
	})
	for _, path := range []string{"/live/mp3.flv", "/live/mp3/index.m3u8", "/play/live/mp3/live.mp4"} {
		resp, err := http.Get("http://" + r.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(bufio.NewReader(io.LimitReader(resp.Body, 1000)))
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(msg), "AAC") {
			t.Errorf("GET %s: %d %q, want 415 naming the supported codecs", path, resp.StatusCode, msg)
		}
	}
}

// TestStreamList checks GET /: the live stream with its player link and its RTMP,
// RTMPT, HTTP-FLV and HLS URLs.
func TestStreamList(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	rtmptest.StartPublisher(t, r.url("rtmp", "live/list"), rtmptest.PublishOptions{Loop: true})
	waitFor(t, 10*time.Second, "the publisher", func() bool { s, ok := r.stream(t, "live/list"); return ok && s.Live })
	resp, err := http.Get("http://" + r.httpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rtmpPort, _ := net.SplitHostPort(r.rtmpAddr)
	for _, want := range []string{
		`href="/play/live/list"`,
		"rtmp://127.0.0.1:" + rtmpPort + "/live/list",
		"rtmpt://" + r.httpAddr + "/live/list",
		"http://" + r.httpAddr + "/live/list.flv",
		"http://" + r.httpAddr + "/live/list/index.m3u8",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("stream list lacks %q:\n%s", want, body)
		}
	}
}
