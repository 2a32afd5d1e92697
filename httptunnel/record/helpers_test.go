package record_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv/flvtest"
	"github.com/mtrelay/mtrelay/httptunnel/record"
	"github.com/mtrelay/mtrelay/relay"
)

// logBuffer collects a test's log lines (JSON) to check what was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines whose message is msg, decoded.
func (b *logBuffer) lines(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// env is a hub and a recorder writing to a temporary directory.
type env struct {
	hub  *relay.Hub
	rec  *record.Recorder
	dir  string
	logs *logBuffer
}

// newEnv returns a hub whose queues hold the whole fixture (the tests publish it in
// one burst) and a recorder over it; both are closed when the test ends, the hub
// first, as the relay does.
func newEnv(t testing.TB, cfg record.Config, setup ...func(*record.Recorder)) *env {
	t.Helper()
	logs := &logBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.DebugLevel)
	hub, err := relay.New(relay.Config{QueueDuration: time.Minute, QueuePackets: 1 << 14, QueueBytes: 64 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	rec, err := record.New(cfg, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(rec)
	}
	t.Cleanup(func() {
		hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			t.Errorf("recorder close: %v", err)
		}
	})
	return &env{hub: hub, rec: rec, dir: cfg.Dir, logs: logs}
}

// publish starts a publish of key with the given publish type.
func (e *env) publish(t testing.TB, key, mode string) *relay.Publisher {
	t.Helper()
	p, err := e.hub.Publish(key, relay.PublisherInfo{Protocol: "test", Remote: "test", Mode: mode, Owner: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publishAll publishes pkts as one publish of key and unpublishes.
func (e *env) publishAll(t testing.TB, key, mode string, pkts []*relay.Packet) {
	t.Helper()
	p := e.publish(t, key, mode)
	for _, pk := range pkts {
		p.WritePacket(pk)
	}
	p.Close()
}

// waitIdle waits until no recording is being written.
func (e *env) waitIdle(t testing.TB) {
	t.Helper()
	waitFor(t, "recordings to finish", func() bool { return e.rec.Stats().Active == 0 })
}

// list returns the recordings, failing the test on error.
func (e *env) list(t testing.TB) []record.Recording {
	t.Helper()
	l, err := e.rec.List()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitFor polls cond until it holds, for at most 15 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fixture returns the fixture's packets (shared, read-only).
func fixture(t testing.TB) []*relay.Packet {
	t.Helper()
	return flvtest.FixturePackets(t)
}

// player is a plain hub subscriber counting what it gets.
type player struct {
	sub  *relay.Subscriber
	mu   sync.Mutex
	got  map[relay.Kind]int
	done chan struct{}
}

// startPlayer subscribes to key and reads until the subscriber ends.
func startPlayer(t testing.TB, hub *relay.Hub, key string) *player {
	t.Helper()
	sub, err := hub.Subscribe(key, relay.SubscribeOptions{Protocol: "test", Remote: "player"})
	if err != nil {
		t.Fatal(err)
	}
	pl := &player{sub: sub, got: map[relay.Kind]int{}, done: make(chan struct{})}
	go func() {
		defer close(pl.done)
		var frames []relay.Frame
		for {
			var err error
			frames, err = sub.Read(context.Background(), frames[:0])
			pl.mu.Lock()
			for _, f := range frames {
				pl.got[f.Packet.Kind]++
			}
			pl.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { sub.Close(); <-pl.done })
	return pl
}

func (pl *player) count(k relay.Kind) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.got[k]
}

// counts returns how many audio and video packets (sequence headers included) and
// metadata packets pkts has.
func counts(pkts []*relay.Packet) map[relay.Kind]int {
	m := map[relay.Kind]int{}
	for _, p := range pkts {
		m[p.Kind]++
	}
	return m
}
