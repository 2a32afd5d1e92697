package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestDuplicatePublisherRefused checks that a second publisher on a live key is refused
// with a clear error while the first publisher's player keeps receiving every frame.
func TestDuplicatePublisherRefused(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	url := r.rtmpURL("live/dup")
	first := rtmptest.StartPublisher(t, url, rtmptest.PublishOptions{Loop: true})
	waitFor(t, 10*time.Second, "first publisher", func() bool {
		s, ok := r.stream(t, "live/dup")
		return ok && s.Live
	})
	out := filepath.Join(t.TempDir(), "player.flv")
	player := rtmptest.StartRecorder(t, url, out)
	waitFor(t, 10*time.Second, "player", func() bool {
		s, _ := r.stream(t, "live/dup")
		return s.Subscribers["rtmp"] == 1
	})

	second := rtmptest.StartPublisher(t, url, rtmptest.PublishOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := second.Wait(ctx)
	if err == nil || strings.Contains(err.Error(), "still running") {
		t.Fatalf("second publisher: got %v, want a refusal", err)
	}
	if !strings.Contains(second.Stderr(), "already has a publisher") {
		t.Errorf("second publisher's error does not say why:\n%s", second.Stderr())
	}
	s, _ := r.stream(t, "live/dup")
	if s.Publisher == nil || s.Subscribers["rtmp"] != 1 {
		t.Fatalf("after refusal: publisher %+v, subscribers %v", s.Publisher, s.Subscribers)
	}

	time.Sleep(2 * time.Second) // the player keeps receiving from the first publisher
	first.Stop()
	if err := player.Wait(ctx); err != nil {
		t.Fatalf("player: %v", err)
	}
	video, _ := mediaPackets(rtmptest.ProbePackets(t, out))
	if len(video) < 50 {
		t.Fatalf("player got %d video packets, want at least 50", len(video))
	}
	if !video[0].Keyframe {
		t.Errorf("player's first video packet is not a keyframe")
	}
	for i := 1; i < len(video); i++ {
		if gap := video[i].DTS - video[i-1].DTS; gap > 200 {
			t.Errorf("video gap of %d ms at packet %d: the player lost frames", gap, i)
		}
	}
	rtmptest.DecodeFrames(t, out)
}

// TestSIGTERMGracefulShutdown runs the real binary, sends SIGTERM while a stream plays,
// and checks the process exits 0 within 5 s and the player is told the stream ended.
func TestSIGTERMGracefulShutdown(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "mtrelay")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(t.Context(), bin, "--rtmp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	var rtmpAddr string
	for rtmpAddr == "" && lines.Scan() {
		var l struct {
			Message string `json:"message"`
			RTMP    string `json:"rtmp"`
		}
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Message == "mtrelay listening" {
			rtmpAddr = l.RTMP
		}
	}
	if rtmpAddr == "" {
		t.Fatal("relay did not log its listening address")
	}
	var logs strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		for lines.Scan() {
			logs.Write(lines.Bytes())
			logs.WriteByte('\n')
		}
	}()

	url := "rtmp://" + rtmpAddr + "/live/term"
	rtmptest.StartPublisher(t, url, rtmptest.PublishOptions{Loop: true})
	out := filepath.Join(t.TempDir(), "player.flv")
	player := rtmptest.StartRecorder(t, url, out)
	time.Sleep(3 * time.Second)

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { <-logDone; exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("exit code %d, want 0\n%s", ee.ExitCode(), logs.String())
			}
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("relay still running 5s after SIGTERM\n%s", logs.String())
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := player.Wait(ctx); err != nil {
		t.Fatalf("player did not end cleanly: %v", err)
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		t.Fatalf("player wrote nothing: %v", err)
	}
	rtmptest.DecodeFrames(t, out)
	if !strings.Contains(logs.String(), `"stopped"`) {
		t.Errorf("no 'stopped' log line:\n%s", logs.String())
	}
}
