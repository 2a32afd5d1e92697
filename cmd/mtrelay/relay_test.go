package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// testRelay is a relay running in-process on 127.0.0.1 ports chosen by the kernel.
type testRelay struct {
	rtmpAddr string
	httpAddr string
	done     chan error
	cancel   context.CancelFunc
}

// startRelay runs the relay with default config, changed by mutate, until the test ends.
func startRelay(t *testing.T, mutate ...func(*Config)) *testRelay {
	t.Helper()
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogLevel = "debug"
	for _, m := range mutate {
		m(&cfg)
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rl.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &testRelay{rtmpAddr: rl.Addr().String(), httpAddr: hl.Addr().String(), done: make(chan error, 1), cancel: cancel}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	go func() { r.done <- run(ctx, cfg, log, listeners{rtmp: rl, http: hl}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("relay run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("relay did not stop within 10s")
		}
	})
	return r
}

func (r *testRelay) rtmpURL(path string) string { return "rtmp://" + r.rtmpAddr + "/" + path }

// url returns the URL of path over transport "rtmp" or "rtmpt".
func (r *testRelay) url(transport, path string) string {
	switch transport {
	case "rtmp":
		return r.rtmpURL(path)
	case "rtmpt":
		return "rtmpt://" + r.httpAddr + "/" + path
	}
	panic("unknown transport " + transport)
}

// streams fetches /api/streams.
func (r *testRelay) streams(t *testing.T) []relay.StreamStats {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/api/streams")
	if err != nil {
		t.Fatalf("GET /api/streams: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Streams []relay.StreamStats `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode /api/streams: %v", err)
	}
	return body.Streams
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *testRelay) stream(t *testing.T, key string) (relay.StreamStats, bool) {
	for _, s := range r.streams(t) {
		if s.Key == key {
			return s, true
		}
	}
	return relay.StreamStats{}, false
}
