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
	rtmpAddr  string
	httpAddr  string
	rtmpsAddr string // "" without TLS
	httpsAddr string // "" without TLS
	done      chan error
	cancel    context.CancelFunc
}

// relayOptions tunes launchRelay.
type relayOptions struct {
	log io.Writer // where the relay logs; default the test log
	tls bool      // open RTMPS and HTTPS listeners (with a self-signed certificate unless cfg names one)
	cfg *Config   // the config to start from; default the flags' defaults
	// run replaces run(ctx, cfg, log, ls), e.g. with runReloadable; it builds its own
	// logger then.
	run func(ctx context.Context, cfg Config, ls listeners) error
}

// startRelay runs the relay with default config, changed by mutate, until the test ends.
func startRelay(t testing.TB, mutate ...func(*Config)) *testRelay {
	t.Helper()
	return launchRelay(t, relayOptions{}, mutate...)
}

// launchRelay runs the relay with every listener on 127.0.0.1:0 until the test ends.
func launchRelay(t testing.TB, o relayOptions, mutate ...func(*Config)) *testRelay {
	t.Helper()
	var cfg Config
	if o.cfg != nil {
		cfg = *o.cfg
	} else {
		var err error
		if cfg, err = parseConfig(nil, func(string) string { return "" }, io.Discard); err != nil {
			t.Fatal(err)
		}
		cfg.LogLevel = "debug"
	}
	if o.tls && cfg.TLSCert == "" {
		cfg.TLSCert, cfg.TLSKey = writeSelfSignedCert(t)
	}
	for _, m := range mutate {
		m(&cfg)
	}
	var ls listeners
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ls.close()
			t.Fatal(err)
		}
		return ln
	}
	ls.rtmp, ls.http = listen(), listen()
	ctx, cancel := context.WithCancel(context.Background())
	r := &testRelay{rtmpAddr: ls.rtmp.Addr().String(), httpAddr: ls.http.Addr().String(), done: make(chan error, 1), cancel: cancel}
	if o.tls {
		ls.rtmps, ls.https = listen(), listen()
		r.rtmpsAddr, r.httpsAddr = ls.rtmps.Addr().String(), ls.https.Addr().String()
	}
	if o.run == nil {
		if o.log == nil {
			o.log = zerolog.NewTestWriter(t)
		}
		log := zerolog.New(o.log).Level(zerolog.DebugLevel).With().Timestamp().Logger()
		o.run = func(ctx context.Context, cfg Config, ls listeners) error { return run(ctx, cfg, log, ls) }
	}
	go func() { r.done <- o.run(ctx, cfg, ls) }()
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

// url returns the URL of path over transport "rtmp", "rtmpt", "rtmps" or "rtmpts".
func (r *testRelay) url(transport, path string) string {
	switch transport {
	case "rtmp":
		return r.rtmpURL(path)
	case "rtmpt":
		return "rtmpt://" + r.httpAddr + "/" + path
	case "rtmps":
		return "rtmps://" + r.rtmpsAddr + "/" + path
	case "rtmpts":
		return "rtmpts://" + r.httpsAddr + "/" + path
	}
	panic("unknown transport " + transport)
}

// apiStreams is the body of GET /api/streams.
type apiStreams struct {
	Streams []relay.StreamStats `json:"streams"`
	Tunnels int                 `json:"rtmpt_tunnels"`
	Conns   int                 `json:"rtmp_connections"`
}

// api fetches /api/streams.
func (r *testRelay) api(t *testing.T) apiStreams {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/api/streams")
	if err != nil {
		t.Fatalf("GET /api/streams: %v", err)
	}
	defer resp.Body.Close()
	var body apiStreams
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode /api/streams: %v", err)
	}
	return body
}

// streams returns the streams in /api/streams.
func (r *testRelay) streams(t *testing.T) []relay.StreamStats { return r.api(t).Streams }

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
