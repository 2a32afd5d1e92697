package main

// Helpers for the end-to-end tests that drive the relay with rtmptest's Go client
// (client_e2e_test.go, slow_e2e_test.go, badinput_e2e_test.go, leak_e2e_test.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// fixtureDurationMS is where a second pass of the fixture starts when it is looped:
// its duration (10.08 s), so the loop continues at the fixture's own pace.
const fixtureDurationMS = 10080

// fixtureTags returns the fixture's FLV tags in file order.
func fixtureTags(t testing.TB) []rtmptest.FLVTag {
	t.Helper()
	tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// isSeqHeader reports whether an audio or video payload is an AVC or AAC sequence
// header (FLV 10.1 E.4.2.1, E.4.3.1: packet type 0).
func isSeqHeader(typeID uint8, p []byte) bool {
	return (typeID == rtmptest.TypeVideo || typeID == rtmptest.TypeAudio) && len(p) > 1 && p[1] == 0
}

// isVideoFrame reports whether a message is a video frame (not a sequence header).
func isVideoFrame(typeID uint8, p []byte) bool {
	return typeID == rtmptest.TypeVideo && len(p) > 1 && p[1] != 0
}

// isKeyframe reports whether a video payload is a key frame (FLV FrameType 1).
func isKeyframe(p []byte) bool { return len(p) > 0 && p[0]>>4 == 1 }

// isEndOfSequence reports whether a video payload is an AVC end of sequence (packet type 2).
func isEndOfSequence(typeID uint8, p []byte) bool {
	return typeID == rtmptest.TypeVideo && len(p) > 1 && p[1] == 2
}

// loopTags returns the fixture played n times back to back, the way
// `ffmpeg -stream_loop` publishes it: metadata and sequence headers once, then the
// media of every pass with its timestamps moved by fixtureDurationMS per pass. The
// AVC end-of-sequence tag is left out, since the stream does not end between passes.
func loopTags(tags []rtmptest.FLVTag, n int) []rtmptest.FLVTag {
	var out []rtmptest.FLVTag
	for i := range n {
		for _, tg := range tags {
			if isEndOfSequence(tg.TypeID, tg.Payload) {
				continue
			}
			media := (tg.TypeID == rtmptest.TypeAudio || tg.TypeID == rtmptest.TypeVideo) && !isSeqHeader(tg.TypeID, tg.Payload)
			if i > 0 && !media {
				continue
			}
			tg.Timestamp += uint32(i * fixtureDurationMS)
			out = append(out, tg)
		}
	}
	return out
}

// countVideoFrames counts the video frames (not sequence headers) in tags.
func countVideoFrames(tags []rtmptest.FLVTag) int {
	n := 0
	for _, tg := range tags {
		if isVideoFrame(tg.TypeID, tg.Payload) {
			n++
		}
	}
	return n
}

// splitKey splits "app/stream" into its app and stream name.
func splitKey(key string) (app, name string) {
	app, name, _ = strings.Cut(key, "/")
	return app, name
}

// transports are the ways a Go client reaches the relay: RTMP over TCP, and RTMPT
// through httptunnel/tunneltest's client.
var transports = []string{"rtmp", "rtmpt"}

// dialConnect dials the relay's RTMP port and sends connect for app. The caller
// closes the client.
func dialConnect(ctx context.Context, addr, app string) (*rtmptest.Client, error) {
	c, err := rtmptest.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(app, "rtmp://"+addr+"/"+app); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dial returns a Go client that did the handshake over transport, "rtmp" or "rtmpt"
// (an RTMPT tunnel behaving like ffmpeg's). The caller closes the client.
func (r *testRelay) dial(ctx context.Context, transport string) (*rtmptest.Client, error) {
	switch transport {
	case "rtmp":
		return rtmptest.Dial(ctx, r.rtmpAddr)
	case "rtmpt":
		conn, err := tunneltest.Dial(ctx, "http://"+r.httpAddr)
		if err != nil {
			return nil, err
		}
		return rtmptest.NewClientContext(ctx, conn) // closes conn on failure
	}
	return nil, fmt.Errorf("unknown transport %q", transport)
}

// connect returns a Go client connected to app over transport, closed when the test
// ends.
func (r *testRelay) connect(t testing.TB, transport, app string) *rtmptest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	c, err := r.dial(ctx, transport)
	if err != nil {
		t.Fatalf("%s dial: %v", transport, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(app, r.url(transport, app)); err != nil {
		t.Fatalf("%s connect %s: %v", transport, app, err)
	}
	return c
}

// publisher returns a Go client publishing key ("app/stream") over transport.
func (r *testRelay) publisher(t testing.TB, transport, key string) *rtmptest.Client {
	t.Helper()
	app, name := splitKey(key)
	c := r.connect(t, transport, app)
	if err := c.Publish(name); err != nil {
		t.Fatalf("publish %s: %v", key, err)
	}
	return c
}

// player returns a Go client playing key ("app/stream") over transport.
func (r *testRelay) player(t testing.TB, transport, key string) *rtmptest.Client {
	t.Helper()
	app, name := splitKey(key)
	c := r.connect(t, transport, app)
	if err := c.Play(name); err != nil {
		t.Fatalf("play %s: %v", key, err)
	}
	return c
}

// forEachTransport runs f as a parallel subtest per transport.
func forEachTransport(t *testing.T, f func(t *testing.T, transport string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}

// subscribers returns how many players key has on protocol; 0 if the stream is unknown.
func (r *testRelay) subscribers(t *testing.T, key, protocol string) int {
	s, _ := r.stream(t, key)
	return s.Subscribers[protocol]
}

// pacer spaces media out in real time: media time ms is due rate times faster than
// real time after start. A rate <= 0 sends at once.
type pacer struct {
	start time.Time
	rate  float64
	t0    int64 // media time of start
}

func newPacer(rate float64, t0 uint32) *pacer {
	return &pacer{start: time.Now(), rate: rate, t0: int64(t0)}
}

// wait sleeps until media time ms is due, or ctx ends.
func (p *pacer) wait(ctx context.Context, ms uint32) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	due := p.start.Add(time.Duration(float64(max(int64(ms)-p.t0, 0)) * float64(time.Millisecond) / p.rate))
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// elapsedMedia returns the media time due now.
func (p *pacer) elapsedMedia() int64 {
	return p.t0 + int64(float64(time.Since(p.start).Milliseconds())*p.rate)
}

// sendTags publishes tags on c at rate times real time (see pacer), each timestamp
// moved by off (wrapping at 2^32 as RTMP timestamps do). It returns early when ctx
// ends or a write fails.
func sendTags(ctx context.Context, c *rtmptest.Client, tags []rtmptest.FLVTag, off uint32, p *pacer) error {
	_, err := sendTagsN(ctx, c, tags, off, p)
	return err
}

// sendTagsN is sendTags that also returns how many tags it sent: tags[:n] went out.
func sendTagsN(ctx context.Context, c *rtmptest.Client, tags []rtmptest.FLVTag, off uint32, p *pacer) (n int, err error) {
	for i, tg := range tags {
		if err := p.wait(ctx, tg.Timestamp); err != nil {
			return i, err
		}
		if err := c.WriteMedia(tg.TypeID, tg.Timestamp+off, tg.Payload); err != nil {
			return i, err
		}
	}
	return len(tags), nil
}

// livePublisher publishes tags on c from a goroutine until stop is called, and
// returns stop. stop ends the publish with FCUnpublish and deleteStream and returns
// the tags that went out; it fails the test if the publisher failed or ran out of
// tags before it was stopped.
func livePublisher(t *testing.T, ctx context.Context, c *rtmptest.Client, tags []rtmptest.FLVTag, p *pacer) (stop func() []rtmptest.FLVTag) {
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		n, err := sendTagsN(ctx, c, tags, 0, p)
		done <- result{n, err}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() []rtmptest.FLVTag {
		t.Helper()
		cancel()
		res := <-done
		if !errors.Is(res.err, context.Canceled) {
			t.Fatalf("publisher ended before it was stopped, after %d of %d tags: %v", res.n, len(tags), res.err)
		}
		if err := c.CloseStream(); err != nil {
			t.Fatalf("publisher: close stream: %v", err)
		}
		return tags[:res.n]
	}
}

// goSend runs sendTags in a goroutine; the returned channel yields its result. The
// goroutine ends when ctx ends, and the test waits for it.
func goSend(t *testing.T, ctx context.Context, c *rtmptest.Client, tags []rtmptest.FLVTag, off uint32, p *pacer) <-chan error {
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { done <- sendTags(ctx, c, tags, off, p) })
	t.Cleanup(wg.Wait)
	return done
}

// rxMsg is one media message a player received.
type rxMsg struct {
	typeID  uint8
	ts      uint32
	payload []byte
	at      time.Time // when ReadMedia returned it
}

func (m rxMsg) String() string {
	return fmt.Sprintf("type %d ts %d len %d", m.typeID, m.ts, len(m.payload))
}

// readUntilStatus reads media from c until the server sends a status that ends the
// play (a *rtmptest.StatusError, returned as is), ctx ends or the connection fails.
// stop, if not nil, ends the read early when it returns true for the message just
// read.
func readUntilStatus(ctx context.Context, c *rtmptest.Client, stop func(rxMsg) bool) ([]rxMsg, *rtmptest.StatusError, error) {
	var got []rxMsg
	for {
		m, err := c.ReadMedia(ctx)
		if err != nil {
			if se, ok := errors.AsType[*rtmptest.StatusError](err); ok {
				return got, se, nil
			}
			return got, nil, err
		}
		if m.TypeID == rtmptest.TypeData && isSampleAccess(m.Payload) {
			continue // the relay's answer to play, not stream data
		}
		rx := rxMsg{typeID: m.TypeID, ts: m.Timestamp, payload: m.Payload, at: time.Now()}
		got = append(got, rx)
		if stop != nil && stop(rx) {
			return got, nil, nil
		}
	}
}

// isSampleAccess reports whether a data message is |RtmpSampleAccess, which the relay
// sends after NetStream.Play.Start.
func isSampleAccess(p []byte) bool {
	v, err := rtmptest.DecodeAMF0(p)
	return err == nil && len(v) > 0 && v[0] == "|RtmpSampleAccess"
}

// wantTimestamps returns the timestamps a player that attached before the publisher
// sees for tags: the publisher's times (moved by off) rebased so that the first
// audio or video frame is at 0, with metadata and sequence headers before it at 0,
// and never going back: where the publisher's timestamps go back (the fixture's last
// tag, an AVC end of sequence, is 105 ms older than the audio before it) the relay
// repeats the previous time, since a player's timestamps are monotonic.
func wantTimestamps(tags []rtmptest.FLVTag, off uint32) []uint32 {
	out := make([]uint32, len(tags))
	var (
		prev              uint32 // last 32-bit time, to unwrap the next
		ext               int64  // unwrapped time
		origin, last      int64
		started, originOK bool
	)
	for i, tg := range tags {
		ts := tg.Timestamp + off
		if started {
			ext += int64(int32(ts - prev)) // RTMP time wraps at 2^32
		} else {
			started, ext = true, int64(ts)
		}
		prev = ts
		media := (tg.TypeID == rtmptest.TypeAudio || tg.TypeID == rtmptest.TypeVideo) && !isSeqHeader(tg.TypeID, tg.Payload)
		if !originOK {
			if !media {
				out[i] = uint32(last)
				continue
			}
			originOK, origin = true, ext
		}
		last = max(last, ext-origin)
		out[i] = uint32(last)
	}
	return out
}

// compareToTags checks that got holds exactly tags, in order, with identical
// payloads (so composition time offsets, bytes 2-4 of an AVC payload, are intact) and
// the timestamps of wantTimestamps.
func compareToTags(t *testing.T, who string, got []rxMsg, tags []rtmptest.FLVTag, off uint32) {
	t.Helper()
	want := wantTimestamps(tags, off)
	if len(got) != len(tags) {
		t.Errorf("%s: got %d messages, want %d", who, len(got), len(tags))
	}
	for i := range min(len(got), len(tags)) {
		g, w := got[i], tags[i]
		if g.typeID != w.TypeID || !bytes.Equal(g.payload, w.Payload) {
			t.Errorf("%s: message %d is %v, want type %d ts %d len %d (payload differs: %v)",
				who, i, g, w.TypeID, w.Timestamp, len(w.Payload), !bytes.Equal(g.payload, w.Payload))
			return
		}
		if g.ts != want[i] {
			t.Errorf("%s: message %d (%v): timestamp %d, want %d (publisher sent %d)", who, i, g, g.ts, want[i], w.Timestamp+off)
			return
		}
	}
}

// checkMonotonic checks that the timestamps of msgs never go back.
func checkMonotonic(t *testing.T, who string, msgs []rxMsg) {
	t.Helper()
	for i := 1; i < len(msgs); i++ {
		if msgs[i].ts < msgs[i-1].ts {
			t.Errorf("%s: timestamp goes back from %d to %d at message %d (%v)", who, msgs[i-1].ts, msgs[i].ts, i, msgs[i])
			return
		}
	}
}

// logSink keeps the relay's JSON log lines for assertions and also passes them to
// the test log.
type logSink struct {
	tw io.Writer // zerolog test writer

	mu    sync.Mutex
	lines []map[string]any // guarded by mu
}

func (s *logSink) Write(p []byte) (int, error) {
	var m map[string]any
	if json.Unmarshal(p, &m) == nil {
		s.mu.Lock()
		s.lines = append(s.lines, m)
		s.mu.Unlock()
	}
	return s.tw.Write(p)
}

// find returns the log lines for which match returns true.
func (s *logSink) find(match func(map[string]any) bool) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range s.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// startRelayLogs is startRelay that also returns the relay's log lines.
func startRelayLogs(t *testing.T, mutate ...func(*Config)) (*testRelay, *logSink) {
	t.Helper()
	sink := &logSink{tw: zerolog.NewTestWriter(t)}
	return launchRelay(t, relayOptions{log: sink}, mutate...), sink
}

// readResult is what readUntilStatus returned.
type readResult struct {
	msgs   []rxMsg
	status *rtmptest.StatusError
	err    error
}

// goRead runs readUntilStatus in a goroutine that the test waits for.
func goRead(t *testing.T, ctx context.Context, c *rtmptest.Client, stop func(rxMsg) bool) <-chan readResult {
	done := make(chan readResult, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		msgs, se, err := readUntilStatus(ctx, c, stop)
		done <- readResult{msgs, se, err}
	})
	t.Cleanup(wg.Wait)
	return done
}

// publishAll sends tags on pub (see sendTags), then ends the publish with FCUnpublish
// and deleteStream, as ffmpeg and OBS do.
func publishAll(ctx context.Context, pub *rtmptest.Client, tags []rtmptest.FLVTag, off uint32, p *pacer) error {
	if err := sendTags(ctx, pub, tags, off, p); err != nil {
		return err
	}
	return pub.CloseStream()
}

// wantUnpublished fails the test unless res ended with NetStream.Play.UnpublishNotify.
func wantUnpublished(t *testing.T, who string, res readResult) {
	t.Helper()
	if res.err != nil || res.status == nil || res.status.Code != "NetStream.Play.UnpublishNotify" {
		t.Fatalf("%s: after %d messages, ended with status %v, error %v; want NetStream.Play.UnpublishNotify",
			who, len(res.msgs), res.status, res.err)
	}
}

// rawHandshake performs the client side of the simple RTMP handshake (RTMP 1.0 §5.2)
// on conn by hand: C0+C1, read S0+S1+S2, C2 echoing S1.
func rawHandshake(conn net.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	c01 := make([]byte, 1+1536)
	c01[0] = 3
	if _, err := conn.Write(c01); err != nil {
		return fmt.Errorf("write c0c1: %w", err)
	}
	s012 := make([]byte, 1+2*1536)
	if _, err := io.ReadFull(conn, s012); err != nil {
		return fmt.Errorf("read s0s1s2: %w", err)
	}
	if s012[0] != 3 {
		return fmt.Errorf("s0 version %d", s012[0])
	}
	if _, err := conn.Write(s012[1 : 1+1536]); err != nil {
		return fmt.Errorf("write c2: %w", err)
	}
	return nil
}

// rawDial dials addr and performs the handshake; the conn is closed when the test ends.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn := rawDialNoHandshake(t, addr)
	if err := rawHandshake(conn); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return conn
}

// appendCommand appends an AMF0 command message (type 20) on chunk stream 3 at the
// default chunk size, 128.
func appendCommand(t *testing.T, dst []byte, streamID uint32, vals ...any) []byte {
	t.Helper()
	p, err := rtmptest.EncodeAMF0(vals...)
	if err != nil {
		t.Fatal(err)
	}
	return chunk.AppendMessage(dst, chunk.DefaultChunkSize, 3, 20, streamID, 0, p)
}

// connectPlayCommands returns connect, createStream and play for key ("app/stream")
// as raw chunks, for a client that never reads the answers. createStream's answer
// would be 1, the first stream id, so play goes to stream 1.
func connectPlayCommands(t *testing.T, addr, key string) []byte {
	app, name := splitKey(key)
	b := appendCommand(t, nil, 0, "connect", 1.0, map[string]any{"app": app, "tcUrl": "rtmp://" + addr + "/" + app})
	b = appendCommand(t, b, 0, "createStream", 2.0, nil)
	return appendCommand(t, b, 1, "play", 3.0, nil, name, -2000.0)
}

// expectClosed reads conn until the relay closes it (EOF or a reset; for an RTMPT
// tunnel, the error of the request that finds it gone) and fails the test if it stays
// open for within. It returns how long that took and the read error.
func expectClosed(t *testing.T, what string, conn net.Conn, within time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(within))
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := conn.Read(buf)
		n += k
		if err == nil {
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Errorf("%s: connection still open after %v (%d bytes read)", what, within, n)
		}
		return time.Since(start), err
	}
}
