package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// startRelay runs mtrelay's hub, RTMP server and RTMPT tunnels in-process
// on 127.0.0.1 ports chosen by the kernel, until the test ends. It returns
// the RTMP and HTTP addresses.
func startRelay(t *testing.T) (rtmpAddr, httpAddr string) {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	hub, err := relay.New(relay.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rtmp.New(rtmp.Config{}, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	tunnels, err := httptunnel.New(httptunnel.Config{}, log, rs)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	tunnels.Mount(mux)
	hs := httptest.NewServer(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		hub.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = tunnels.Close(sctx)
		_ = rs.Close(sctx)
		hs.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) {
			t.Errorf("rtmp serve: %v", err)
		}
	})
	return ln.Addr().String(), strings.TrimPrefix(hs.URL, "http://")
}

// TestRunAgainstRelay runs the generator with 5 players for 3 s against an
// in-process relay, over RTMP and RTMPT, and checks the report is sane:
// everyone connected, every frame sent in the window received, latencies
// and joins measured.
func TestRunAgainstRelay(t *testing.T) {
	for _, proto := range []string{"rtmp", "rtmpt"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			rtmpAddr, httpAddr := startRelay(t)
			cfg := config{
				rtmpAddr: rtmpAddr, httpAddr: httpAddr, proto: proto,
				app: "live", stream: "load", file: rtmptest.FixturePath(t),
				players: 5, ramp: 300 * time.Millisecond, settle: 500 * time.Millisecond,
				duration: 3 * time.Second, connectTimeout: 5 * time.Second,
			}
			rep, err := run(t.Context(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			rep.writeText(&text)
			t.Log("\n" + text.String())

			if rep.Connected != 5 || rep.Failed != 0 || rep.Dropped != 0 {
				t.Errorf("connected %d, failed %d, dropped %d; want 5, 0, 0 (%v)", rep.Connected, rep.Failed, rep.Dropped, rep.FailReasons)
			}
			// 25 fps for 3 s, give or take a few frames at each edge on a
			// loaded machine.
			if rep.SentVideoFrames < 65 || rep.SentVideoFrames > 85 {
				t.Errorf("sent %d video frames in 3 s, want about 75", rep.SentVideoFrames)
			}
			if rep.VideoDeliveredPct < 99.5 || rep.VideoFrames.Min < float64(rep.SentVideoFrames-1) {
				t.Errorf("video frames per player %+v of %d sent (%.2f%%), want all", rep.VideoFrames, rep.SentVideoFrames, rep.VideoDeliveredPct)
			}
			if rep.AudioFrames.Min < float64(rep.SentAudioFrames-2) || rep.SentAudioFrames == 0 {
				t.Errorf("audio frames per player %+v of %d sent", rep.AudioFrames, rep.SentAudioFrames)
			}
			// No bound on speed (STYLE §10): only that latency was measured
			// and is not absurd.
			if rep.LatencyMs.N < 5*(rep.SentVideoFrames-1) || rep.LatencyMs.P50 <= 0 || rep.LatencyMs.Max > 10_000 {
				t.Errorf("latency %+v: want a sample per frame and player, in (0, 10 s]", rep.LatencyMs)
			}
			if rep.JoinKeyframeMs.N != 5 || rep.FirstIsKeyPct != 100 {
				t.Errorf("join→keyframe %+v, first frame a key frame %.0f%%: want 5 samples, 100%% (GOP cache)", rep.JoinKeyframeMs, rep.FirstIsKeyPct)
			}
			// Players that fell behind before the window catch up in it, so
			// only a lower bound holds on a busy machine.
			wantMbps := 5 * rep.SentMbps
			if rep.SentMbps < 0.4 || rep.DeliveredMbps < 0.9*wantMbps || rep.DeliveredMbps > 4*wantMbps {
				t.Errorf("delivered %.2f Mbit/s, sent %.2f × 5 players", rep.DeliveredMbps, rep.SentMbps)
			}
			if rep.CPUPct <= 0 || rep.MaxGapMs.Max <= 0 {
				t.Errorf("cpu %.1f%%, max gap %+v: want both measured", rep.CPUPct, rep.MaxGapMs)
			}
		})
	}
}

// TestKeyAccSplits checks that the key of a payload does not depend on how
// it arrives in pieces, as chunks and TCP reads split it arbitrarily.
func TestKeyAccSplits(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 5000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7 + i/3)
		}
		want := frameKey(p)
		for _, step := range []int{1, 3, 16, 31, 32, 33, 4096} {
			var a keyAcc
			for q := p; len(q) > 0; {
				k := min(step, len(q))
				a.write(q[:k])
				q = q[k:]
			}
			if got := a.sum(); got != want {
				t.Errorf("len %d in pieces of %d: key %x, want %x", n, step, got, want)
			}
		}
	}
	if frameKey([]byte("abc")) == frameKey([]byte("abd")) {
		t.Error("different payloads, same key")
	}
}

// TestLoopbackOnly checks that remote targets are refused unless allowed.
func TestLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		isErr bool
	}{
		{"loopback", []string{"-rtmp-addr", "127.0.0.1:1935"}, false},
		{"localhost", []string{"-rtmp-addr", "localhost:1935"}, false},
		{"remote", []string{"-rtmp-addr", "192.0.2.1:1935"}, true},
		{"remote http", []string{"-proto", "httpflv", "-http-addr", "192.0.2.1:80"}, true},
		{"allowed", []string{"-rtmp-addr", "192.0.2.1:1935", "-allow-remote"}, false},
		{"too many players", []string{"-players", "20001"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.isErr {
				t.Errorf("parseFlags(%q) = %v, want error %v", tc.args, err, tc.isErr)
			}
		})
	}
}
