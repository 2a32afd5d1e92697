package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// playerStats is what the test reads from the player page.
type playerStats struct {
	Latency     float64 `json:"latency"`
	Buffer      float64 `json:"buffer"`
	Stalls      int     `json:"stalls"`
	State       string  `json:"state"`
	Mode        string  `json:"mode"`
	CurrentTime float64 `json:"currentTime"`
	Frames      int     `json:"frames"`
	Paused      bool    `json:"paused"`
	Muted       bool    `json:"muted"`
	Error       string  `json:"error"`
}

const statsJS = `(() => { const v = document.getElementById("video"); const s = window.mtrelayStats || {};
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: 0};
  return {latency: s.latency || 0, buffer: s.buffer || 0, stalls: s.stalls || 0, state: s.state || "", mode: s.mode || "",
    currentTime: v.currentTime, frames: q.totalVideoFrames, paused: v.paused, muted: v.muted,
    error: v.error ? String(v.error.code) + " " + v.error.message : ""}; })()`

// startChromium starts Debian's headless Chromium with a fresh profile and returns a
// chromedp context for one tab; the browser is killed when the test ends.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: the player test needs Debian's chromium package (make test-deps installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(960, 540),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func readStats(t *testing.T, ctx context.Context) playerStats {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[playerStats](statsJS))
	if err != nil {
		t.Fatalf("read player stats: %v", err)
	}
	return s
}

// waitPlaying waits until the page plays: state live, currentTime and the decoded
// frame count advancing.
func waitPlaying(t *testing.T, ctx context.Context, what string) playerStats {
	t.Helper()
	var first, last playerStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = readStats(t, ctx)
		if first.State == "" && last.State == "live" && last.Frames > 0 {
			first = last
		}
		if first.State != "" && last.CurrentTime > first.CurrentTime+1 && last.Frames > first.Frames+10 {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: player does not play: %+v (first %+v)", what, last, first)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPlayerChromium plays /play/live/page in headless Chromium (MSE fed with the
// streamed fMP4): time advances, frames are decoded, the video element's own pixels
// have contrast and move (a black, hidden or frozen video fails), the
// measured latency stays under 1.5 s on loopback, the viewer is counted as "page", and
// the page goes offline and plays again when the publisher restarts. The screenshot is
// kept in the test's artifact directory, and written to docs/player.png with -update.
func TestPlayerChromium(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	pub := rtmptest.StartPublisher(t, r.url("rtmp", "live/page"), rtmptest.PublishOptions{Loop: true})
	waitFor(t, 10*time.Second, "the publisher", func() bool { s, ok := r.stream(t, "live/page"); return ok && s.Live })

	ctx := startChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.httpAddr+"/play/live/page")); err != nil {
		t.Fatalf("open player page: %v", err)
	}
	supported, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401e,mp4a.40.2"')`))
	if err != nil {
		t.Fatalf("isTypeSupported: %v", err)
	}
	if !supported {
		t.Fatal("this chromium cannot play H.264/AAC in MSE (a build without proprietary codecs)")
	}
	s := waitPlaying(t, ctx, "first publisher")
	if !s.Muted || s.Mode != "mse" {
		t.Errorf("player: muted %v mode %q, want muted MSE playback", s.Muted, s.Mode)
	}
	// Let the catch-up settle, then latency must stay bounded.
	time.Sleep(3 * time.Second)
	var maxLat float64
	for range 10 {
		s = readStats(t, ctx)
		maxLat = max(maxLat, s.Latency)
		time.Sleep(200 * time.Millisecond)
	}
	if maxLat >= 1.5 || maxLat <= 0 {
		t.Errorf("latency up to %.2f s, want 0 < latency < 1.5 s (%+v)", maxLat, s)
	}
	t.Logf("playing: latency ≤ %.2f s, buffer %.2f s, stalls %d, frames %d", maxLat, s.Buffer, s.Stalls, s.Frames)
	if st, _ := r.stream(t, "live/page"); st.Subscribers["page"] != 1 {
		t.Errorf("page viewers = %d, want 1 (%v)", st.Subscribers["page"], st.Subscribers)
	}

	// The picture: the decoded video, not the page around it, has contrast and moves
	// (testsrc2 animates), so a black, hidden or frozen video fails.
	pic1 := videoPicture(t, ctx)
	time.Sleep(time.Second)
	pic2 := videoPicture(t, ctx)
	if v := lumaVariance(pic2); v < minPictureVariance {
		t.Errorf("video picture looks blank: luma variance %.1f, want ≥ %d", v, minPictureVariance)
	}
	if d := changedFraction(pic1, pic2); d < minPictureChange {
		t.Errorf("video picture does not move: %.2f%% of its pixels changed in 1 s, want ≥ %.2f%%", 100*d, 100*minPictureChange)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("video picture: luma variance %.0f, %.1f%% changed in 1 s", lumaVariance(pic2), 100*changedFraction(pic1, pic2))
	artifact := filepath.Join(t.ArtifactDir(), "player.png")
	if err := os.WriteFile(artifact, shot, 0o644); err != nil {
		t.Error(err)
	} else {
		t.Logf("screenshot: %s (kept with go test -artifacts)", artifact)
	}
	if *update {
		if err := os.WriteFile(filepath.Join(rtmptest.ModuleRoot(t), "docs", "player.png"), shot, 0o644); err != nil {
			t.Error(err)
		}
	}

	// Publisher restart: the page shows offline, then plays the new publisher.
	pub.Stop()
	waitFor(t, 15*time.Second, "the page to go offline", func() bool { return readStats(t, ctx).State == "offline" })
	rtmptest.StartPublisher(t, r.url("rtmp", "live/page"), rtmptest.PublishOptions{Loop: true})
	s = waitPlaying(t, ctx, "after publisher restart")
	t.Logf("recovered: %+v", s)
}

// Bounds of the picture check: testsrc2's colour pattern has a luma variance in the
// thousands and its moving parts change several percent of the picture per second; a
// black, hidden or frozen video gives 0 for both.
const (
	minPictureVariance = 200
	minPictureChange   = 0.005
)

// videoPicture screenshots the video element and returns the part above the page's
// control bar, which overlays the bottom of the video and has contrast of its own.
func videoPicture(t *testing.T, ctx context.Context) image.Image {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shot, err := chromedp.Run(tctx, chromedp.Screenshot(chromedp.CSS("#video")))
	if err != nil {
		t.Fatalf("screenshot of the video: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	// The bar's top as a fraction of the video's height.
	cut, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`(() => {
	  const v = document.getElementById("video").getBoundingClientRect();
	  const b = document.getElementById("bar").getBoundingClientRect();
	  return Math.min(1, Math.max(0, (b.top - v.top) / v.height)); })()`))
	if err != nil {
		t.Fatalf("video layout: %v", err)
	}
	b := img.Bounds()
	b.Max.Y = b.Min.Y + int(cut*float64(b.Dy()))
	if b.Dx() < 16 || b.Dy() < 16 {
		t.Fatalf("video picture of %v: the video element is not visible", b)
	}
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(b)
}

// luma returns the luma (0-255) of the pixel at x, y.
func luma(img image.Image, x, y int) float64 {
	r, g, bl, _ := img.At(x, y).RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
}

// lumaVariance is the variance of the pixels' luma: near 0 for a blank picture.
func lumaVariance(img image.Image) float64 {
	b := img.Bounds()
	var sum, sum2, n float64
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			l := luma(img, x, y)
			sum += l
			sum2 += l * l
			n++
		}
	}
	m := sum / n
	return sum2/n - m*m
}

// changedFraction is the fraction of the sampled pixels whose luma differs by more
// than 24 between two pictures of the same size (1 if the sizes differ).
func changedFraction(a, b image.Image) float64 {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Size() != bb.Size() {
		return 1
	}
	var changed, n float64
	for y := 0; y < ab.Dy(); y += 2 {
		for x := 0; x < ab.Dx(); x += 2 {
			if d := luma(a, ab.Min.X+x, ab.Min.Y+y) - luma(b, bb.Min.X+x, bb.Min.Y+y); d > 24 || d < -24 {
				changed++
			}
			n++
		}
	}
	return changed / n
}
