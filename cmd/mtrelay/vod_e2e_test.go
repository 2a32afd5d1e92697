package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// vodRelay starts a relay whose --vod-dir holds live/fixture.flv (the fixture).
func vodRelay(t *testing.T) *testRelay {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "live"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(rtmptest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "live", "fixture.flv"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return startRelay(t, func(c *Config) { c.VODDir = dir })
}

// checkFrameExact compares the packets ffprobe finds in out with the fixture's:
// same count, payload hashes, keyframe flags, composition offsets and DTS spacing,
// and every frame decodes.
func checkFrameExact(t *testing.T, who, out string) {
	t.Helper()
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, rtmptest.FixturePath(t)))
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
	if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
		t.Fatalf("%s: got %d video %d audio packets, want %d and %d", who, len(gotV), len(gotA), len(wantV), len(wantA))
	}
	for j := range wantV {
		g, w := gotV[j], wantV[j]
		if g.DataHash != w.DataHash || g.Keyframe != w.Keyframe || g.PTS-g.DTS != w.PTS-w.DTS || g.DTS-gotV[0].DTS != w.DTS-wantV[0].DTS {
			t.Fatalf("%s video packet %d: got %s key=%v dts=%d cts=%d, want %s key=%v dts=%d cts=%d", who, j,
				g.DataHash, g.Keyframe, g.DTS, g.PTS-g.DTS, w.DataHash, w.Keyframe, w.DTS, w.PTS-w.DTS)
		}
	}
	for j := range wantA {
		if gotA[j].DataHash != wantA[j].DataHash {
			t.Fatalf("%s audio packet %d differs", who, j)
		}
	}
	if v, a := rtmptest.DecodeFrames(t, out); v != len(wantV) || a != len(wantA) {
		t.Errorf("%s: decoded %d video %d audio frames, want %d and %d", who, v, a, len(wantV), len(wantA))
	}
}

// readFileToEnd reads a file play's media up to its end, which must be
// NetStream.Play.Complete followed at once by NetStream.Play.Stop.
func readFileToEnd(ctx context.Context, t *testing.T, c *rtmptest.Client) []rxMsg {
	t.Helper()
	got, se, err := readUntilStatus(ctx, c, nil)
	if err != nil || se == nil || se.Code != "NetStream.Play.Complete" {
		t.Fatalf("file play: %v %v, want media up to NetStream.Play.Complete", err, se)
	}
	if more, se, err := readUntilStatus(ctx, c, nil); err != nil || se == nil || se.Code != "NetStream.Play.Stop" || len(more) != 0 {
		t.Fatalf("after Play.Complete: %d messages, %v %v; want NetStream.Play.Stop at once", len(more), se, err)
	}
	return got
}

// TestVODFFmpeg plays the fixture from --vod-dir with ffmpeg, with nothing live:
// over RTMP and RTMPT (real time; NetStream.Play.Stop ends ffmpeg) and over HTTP
// /vod/, all frame-exact.
func TestVODFFmpeg(t *testing.T) {
	t.Parallel()
	r := vodRelay(t)
	for _, c := range []struct{ name, url string }{
		{"rtmp", r.rtmpURL("live/fixture")},
		{"rtmpt", r.url("rtmpt", "live/fixture")},
		{"http", "http://" + r.httpAddr + "/vod/live/fixture.flv"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out.flv")
			p := rtmptest.StartRecorder(t, c.url, out)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr())
			}
			checkFrameExact(t, c.name, out)
		})
	}
	// ffprobe reading the RTMP stream itself to the end, counting frames: the end of
	// a file must add no stream (ffprobe 5.1 crashed on an onPlayStatus data message).
	t.Run("ffprobe", func(t *testing.T) {
		t.Parallel()
		ffprobe := rtmptest.RequireTool(t, "ffprobe")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-count_frames", "-show_entries",
			"stream=codec_type,nb_read_frames", "-of", "csv=p=0", r.rtmpURL("live/fixture")).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe -count_frames: %v\n%s", err, out)
		}
		wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, rtmptest.FixturePath(t)))
		want := fmt.Sprintf("video,%d\naudio,%d\n", len(wantV), len(wantA))
		if string(out) != want {
			t.Errorf("ffprobe -count_frames: %q, want %q", out, want)
		}
	})
}

// TestVODSeekPause plays the fixture with the Go client: the stream starts at 0 with
// metadata and sequence headers; after seek(6100) the first media is at the keyframe
// at 6000 (at or before the target), metadata and sequence headers first; pause and
// unpause are acknowledged; the end brings NetStream.Play.Complete and Play.Stop.
func TestVODSeekPause(t *testing.T) {
	t.Parallel()
	r := vodRelay(t)
	c := r.connect(t, "rtmp", "live")
	if err := c.PlayStart("flv:fixture.flv", -2000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	first, se, err := readUntilStatus(ctx, c, func(m rxMsg) bool { return isVideoFrame(m.typeID, m.payload) })
	if err != nil || se != nil {
		t.Fatalf("read: %v %v", err, se)
	}
	if len(first) < 3 || first[0].typeID != rtmptest.TypeData || first[0].ts != 0 {
		t.Fatalf("start: %v, want onMetaData at 0 first", first)
	}
	if v := first[len(first)-1]; !isKeyframe(v.payload) || v.ts != 0 {
		t.Fatalf("first video frame %v: want a keyframe at 0", v)
	}
	seekAt := time.Now()
	if err := c.Seek(6100); err != nil {
		t.Fatal(err)
	}
	after, se, err := readUntilStatus(ctx, c, func(m rxMsg) bool { return isVideoFrame(m.typeID, m.payload) })
	if err != nil || se != nil {
		t.Fatalf("read after seek: %v %v", err, se)
	}
	if after[0].typeID != rtmptest.TypeData {
		t.Errorf("after seek: first %v, want onMetaData", after[0])
	}
	for _, m := range after {
		if m.ts < 6000 {
			t.Errorf("after seek: %v before the keyframe at 6000", m)
		}
	}
	if v := after[len(after)-1]; !isKeyframe(v.payload) || v.ts != 6000 {
		t.Fatalf("first video frame after seek(6100): %v, want the keyframe at 6000", v)
	}
	if err := c.Pause(true, 6000); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(false, 6000); err != nil {
		t.Fatal(err)
	}
	// The rest of the file (4 s at real time, 0.5 s ahead), then the end.
	rest := readFileToEnd(ctx, t, c)
	// Every video frame from the keyframe at 6000 on, once: 100 frames (6000 to
	// 9960) and the end-of-sequence tag, the keyframe included in after.
	var frames int
	for _, m := range append(after, rest...) {
		if m.typeID == rtmptest.TypeVideo && !isSeqHeader(m.typeID, m.payload) {
			frames++
		}
	}
	if frames != 101 {
		t.Errorf("after seek: %d video frames, want 101", frames)
	}
	t.Logf("seek to the end of the file took %v", time.Since(seekAt).Round(time.Millisecond))
}

// TestVODLiveFirst: a live stream of the file's name takes precedence for play with
// start -2000, start 0 still gets the file, start -1000 is live only; bad names get
// StreamNotFound over RTMP and 404 over HTTP while the relay keeps serving.
func TestVODLiveFirst(t *testing.T) {
	t.Parallel()
	r := vodRelay(t)
	pub := r.publisher(t, "rtmp", "live/fixture")
	tags := fixtureTags(t)
	for _, tg := range tags[:10] {
		if err := pub.WriteMedia(tg.TypeID, tg.Timestamp, tg.Payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "live/fixture live", func() bool { s, ok := r.stream(t, "live/fixture"); return ok && s.Live })

	live := r.connect(t, "rtmp", "live")
	if err := live.PlayStart("fixture", -2000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a live subscriber", func() bool { s, _ := r.stream(t, "live/fixture"); return s.Subscribers["rtmp"] == 1 })

	file := r.connect(t, "rtmp", "live")
	if err := file.PlayStart("fixture", 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := file.ReadMedia(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.TypeID != rtmptest.TypeData {
		t.Errorf("start=0: first message type %d, want the file's onMetaData", m.TypeID)
	}
	if s, _ := r.stream(t, "live/fixture"); s.Subscribers["rtmp"] != 1 {
		t.Errorf("start=0 played live: %d live subscribers", s.Subscribers["rtmp"])
	}
	// The live stream has sent 10 tags; the file has 250 video frames.
	var frames int
	for frames < 20 {
		m, err := file.ReadMedia(ctx)
		if err != nil {
			t.Fatalf("start=0 after %d video frames: %v", frames, err)
		}
		if isVideoFrame(m.TypeID, m.Payload) {
			frames++
		}
	}

	// -1000 with no live stream of that name: waits for live, as before VOD existed.
	wait := r.connect(t, "rtmp", "live")
	if err := wait.PlayStart("other", -1000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a waiting subscriber", func() bool { s, _ := r.stream(t, "live/other"); return s.Subscribers["rtmp"] == 1 })

	for _, name := range []string{"../../../etc/passwd", "../fixture", "flv:..\\fixture", "a//b"} {
		c := r.connect(t, "rtmp", "live")
		err := c.PlayStart(name, -2000)
		if se, ok := errors.AsType[*rtmptest.StatusError](err); !ok || se.Code != "NetStream.Play.StreamNotFound" {
			t.Errorf("play %q: %v, want NetStream.Play.StreamNotFound", name, err)
		}
	}
	for _, p := range []string{"/vod/%2e%2e/%2e%2e/etc/passwd", "/vod/live/..%2f..%2fvod_e2e_test.go", "/vod/live/missing.flv"} {
		resp, err := http.Get("http://" + r.httpAddr + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	// Still serving: the file over HTTP, and the live player still gets media.
	resp, err := http.Get("http://" + r.httpAddr + "/vod/live/fixture.flv")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n == 0 {
		t.Errorf("GET /vod/live/fixture.flv after the refusals: %d, %d bytes", resp.StatusCode, n)
	}
	if err := pub.WriteMedia(tags[10].TypeID, tags[10].Timestamp, tags[10].Payload); err != nil {
		t.Fatal(err)
	}
	if _, err := live.ReadMedia(ctx); err != nil {
		t.Errorf("live player after the refusals: %v", err)
	}
}

// vodPageStats is what TestVODPageChromium reads from the VOD page.
type vodPageStats struct {
	State    string  `json:"state"`
	Time     float64 `json:"time"`
	Duration float64 `json:"duration"`
	Frames   int     `json:"frames"`
	Ended    bool    `json:"ended"`
	Restarts int     `json:"restarts"`
	Error    string  `json:"error"`
}

const vodStatsJS = `(() => { const v = document.getElementById("video"); const s = window.mtrelayStats || {};
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: 0};
  return {state: s.state || "", time: v.currentTime, duration: s.duration || 0, frames: q.totalVideoFrames,
    ended: v.ended, restarts: s.restarts || 0, error: v.error ? String(v.error.code) + " " + v.error.message : ""}; })()`

// TestVODPageChromium plays /play/vod?file=live/fixture.flv in headless Chromium:
// the page knows the duration, time advances and frames decode; a seek to 8.5 s (not
// buffered yet) restarts the stream there, and the video plays to its end.
func TestVODPageChromium(t *testing.T) {
	t.Parallel()
	r := vodRelay(t)
	ctx := startChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.httpAddr+"/play/vod?file=live/fixture.flv")); err != nil {
		t.Fatalf("open VOD page: %v", err)
	}
	stats := func() vodPageStats {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(tctx, chromedp.Evaluate[vodPageStats](vodStatsJS))
		if err != nil {
			t.Fatalf("read VOD page stats: %v", err)
		}
		return s
	}
	var s vodPageStats
	waitFor(t, 20*time.Second, "the VOD page to play", func() bool {
		s = stats()
		return s.State == "playing" && s.Time > 1 && s.Frames > 10
	})
	if s.Duration < 9.9 || s.Duration > 10.1 || s.Error != "" {
		t.Fatalf("page stats %+v: want a 10 s duration and no error", s)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const p = document.getElementById("pos"); p.value = "8.5"; p.dispatchEvent(new Event("change")); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the VOD page to end after the seek", func() bool {
		s = stats()
		return s.Ended
	})
	if s.Restarts != 1 || s.Time < 9.5 || s.Error != "" {
		t.Errorf("after seek to 8.5 s: %+v, want one restart and the end reached", s)
	}
}

// TestVODRecording records a published fixture (--record live/*) and plays the
// recording back: over HTTP /vod/{path from /api/recordings} with ffmpeg,
// frame-exact, and over RTMP by its stream name in app live from 8000 ms (the
// keyframe there, no live stream of that name).
func TestVODRecording(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, _, rec := recordFixture(ctx, t)

	out := filepath.Join(t.TempDir(), "out.flv")
	p := rtmptest.StartRecorder(t, "http://"+r.httpAddr+"/vod/"+rec.Path, out)
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr())
	}
	checkFrameExact(t, "http", out)

	name := filepath.Base(rec.Path) // rec-YYYYMMDD-HHMMSS.flv
	c := r.connect(t, "rtmp", "live")
	if err := c.PlayStart(name[:len(name)-len(".flv")], 8000); err != nil {
		t.Fatal(err)
	}
	got := readFileToEnd(ctx, t, c)
	var frames int
	for _, m := range got {
		if isVideoFrame(m.typeID, m.payload) {
			if frames == 0 && (!isKeyframe(m.payload) || m.ts != 8000) {
				t.Errorf("first video frame %v, want the keyframe at 8000", m)
			}
			frames++
		}
	}
	if frames != 51 {
		t.Errorf("%d video frames from 8000 ms, want 51 (50 and the end of sequence)", frames)
	}
}

// TestVODNoGoroutineLeak plays the file 20 times over RTMP (seek, pause, then close:
// half after deleteStream, half abruptly) and 10 times on the page's fMP4 stream
// (closed mid-stream), then checks that the process is back to its goroutine count.
// Not parallel: runtime.NumGoroutine counts the whole test process.
func TestVODNoGoroutineLeak(t *testing.T) {
	r := vodRelay(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	r.warmUp(ctx, t)
	r.api(t) // the HTTP side's lazily started goroutines run from now on
	http.DefaultClient.CloseIdleConnections()
	base := settledGoroutines()
	for i := range 20 {
		c, err := dialConnect(ctx, r.rtmpAddr, "live")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PlayStart("fixture", -2000); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadMedia(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Seek(float64(i * 400)); err != nil {
			t.Fatal(err)
		}
		if err := c.Pause(true, 0); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := c.CloseStream(); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	for range 10 {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.httpAddr+"/play/vod.mp4?file=live/fixture.flv", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	waitFor(t, 10*time.Second, "no RTMP connections", func() bool { return r.api(t).Conns == 0 })
	http.DefaultClient.CloseIdleConnections()
	if n := settledGoroutines(); n > base+2 {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("%d goroutines after the VOD plays, %d before:\n%s", n, base, buf.String())
	}
}
