package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
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
	video, _ := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
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

// TestSIGTERMGracefulShutdown runs the real binary, sends SIGTERM (and, in a second
// relay, SIGINT) while a stream plays, and checks the process exits 0 within 5 s and
// every player is told the stream ended: ffmpeg ends cleanly, and Go players over RTMP
// and RTMPT get onStatus NetStream.Play.UnpublishNotify or NetStream.Play.Stop before
// their connection closes.
func TestSIGTERMGracefulShutdown(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "mtrelay")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for name, sig := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testGracefulShutdown(t, bin, sig)
		})
	}
}

func testGracefulShutdown(t *testing.T, bin string, sig syscall.Signal) {
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
	var rtmpAddr, httpAddr string
	for rtmpAddr == "" && lines.Scan() {
		var l struct {
			Message string `json:"message"`
			RTMP    string `json:"rtmp"`
			HTTP    string `json:"http"`
		}
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Message == "mtrelay listening" {
			rtmpAddr, httpAddr = l.RTMP, l.HTTP
		}
	}
	if rtmpAddr == "" || httpAddr == "" {
		t.Fatal("relay did not log its listening addresses")
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

	// Go players over both transports, reading until the relay says the stream ended.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	goPlayers := make(map[string]<-chan readResult)
	for _, transport := range transports {
		var c *rtmptest.Client
		switch transport {
		case "rtmp":
			c, err = rtmptest.Dial(ctx, rtmpAddr)
		case "rtmpt":
			var conn net.Conn
			if conn, err = tunneltest.Dial(ctx, "http://"+httpAddr); err == nil {
				c, err = rtmptest.NewClientContext(ctx, conn)
			}
		}
		if err != nil {
			t.Fatalf("%s player: dial: %v", transport, err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Connect("live", "rtmp://"+rtmpAddr+"/live"); err != nil {
			t.Fatalf("%s player: connect: %v", transport, err)
		}
		if err := c.Play("term"); err != nil {
			t.Fatalf("%s player: play: %v", transport, err)
		}
		goPlayers[transport] = goRead(t, ctx, c, nil)
	}
	time.Sleep(3 * time.Second)

	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
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
		t.Fatalf("relay still running 5s after %v\n%s", sig, logs.String())
	}
	t.Logf("exited %v after %v", time.Since(start).Round(time.Millisecond), sig)
	for _, transport := range transports {
		res := <-goPlayers[transport]
		if len(res.msgs) == 0 {
			t.Errorf("%s Go player: no media before %v", transport, sig)
		}
		if res.status == nil || (res.status.Code != "NetStream.Play.UnpublishNotify" && res.status.Code != "NetStream.Play.Stop") {
			t.Errorf("%s Go player: after %d messages, ended with status %v, error %v; want NetStream.Play.UnpublishNotify or NetStream.Play.Stop before the connection closed",
				transport, len(res.msgs), res.status, res.err)
		}
	}
	pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer pcancel()
	if err := player.Wait(pctx); err != nil {
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
