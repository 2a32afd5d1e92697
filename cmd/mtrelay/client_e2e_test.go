package main

// End-to-end tests of what a player sees, driven by rtmptest's Go client against the
// real relay over 127.0.0.1, over RTMP and over RTMPT (tunneltest's client).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestLateJoinerStartsOnKeyframe publishes the fixture in real time and joins a player
// in the middle of the second GOP (3.1 s in). The player must get the metadata, the
// AVC and AAC sequence headers, then the cached GOP from its keyframe, with timestamps
// starting at 0 and never going back, and then the live frames without a gap. The
// publisher uses RTMP, the player each transport.
func TestLateJoinerStartsOnKeyframe(t *testing.T) {
	t.Parallel()
	forEachTransport(t, testLateJoiner)
}

func testLateJoiner(t *testing.T, transport string) {
	r := startRelay(t)
	const key = "live/late"
	tags := fixtureTags(t)
	pub := r.publisher(t, "rtmp", key)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := newPacer(1, 0)
	sent := goSend(t, ctx, pub, tags, 0, p)

	// Join 3.1 s into the stream: the keyframes are at 0, 2, 4... s.
	if err := p.wait(ctx, 3100); err != nil {
		t.Fatal(err)
	}
	joinMedia := p.elapsedMedia()
	start := time.Now()
	pl := r.player(t, transport, key)
	playStarted := time.Now()
	var firstKey time.Time
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	videoFrames := 0
	got, se, err := readUntilStatus(rctx, pl, func(m rxMsg) bool {
		if isVideoFrame(m.typeID, m.payload) {
			if videoFrames == 0 {
				firstKey = m.at
			}
			videoFrames++
		}
		return videoFrames == 40 // the cached GOP and about a second of live frames
	})
	if err != nil || se != nil {
		t.Fatalf("player: got %d messages, then %v %v", len(got), se, err)
	}
	cancel()
	if err := <-sent; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("publisher: %v", err)
	}
	t.Logf("%s player joined at media time %d ms: play() took %d ms, join to first keyframe %d ms (after Play.Start: %d ms)",
		transport, joinMedia, playStarted.Sub(start).Milliseconds(), firstKey.Sub(start).Milliseconds(), firstKey.Sub(playStarted).Milliseconds())

	// Metadata, then the sequence headers, in the relay's order.
	if len(got) < 4 {
		t.Fatalf("player got %d messages", len(got))
	}
	if got[0].typeID != rtmptest.TypeData || !bytes.Equal(got[0].payload, tags[0].Payload) {
		t.Errorf("first message is %v, want the metadata", got[0])
	}
	if got[1].typeID != rtmptest.TypeVideo || !isSeqHeader(got[1].typeID, got[1].payload) {
		t.Errorf("second message is %v, want the AVC sequence header", got[1])
	}
	if got[2].typeID != rtmptest.TypeAudio || !isSeqHeader(got[2].typeID, got[2].payload) {
		t.Errorf("third message is %v, want the AAC sequence header", got[2])
	}

	// The first video frame is a keyframe of the fixture; every video frame after it
	// is the fixture's next one, with its timestamp relative to that keyframe.
	var fixV []rtmptest.FLVTag
	for _, tg := range tags {
		if isVideoFrame(tg.TypeID, tg.Payload) {
			fixV = append(fixV, tg)
		}
	}
	var gotV []rxMsg
	for _, m := range got[3:] {
		if m.typeID == rtmptest.TypeVideo {
			gotV = append(gotV, m)
		}
	}
	if !isKeyframe(gotV[0].payload) {
		t.Fatalf("first video frame is not a keyframe: frame type %d", gotV[0].payload[0]>>4)
	}
	k := -1
	for i, tg := range fixV {
		if bytes.Equal(tg.Payload, gotV[0].payload) {
			k = i
			break
		}
	}
	if k < 0 {
		t.Fatalf("first video frame is not one of the fixture's")
	}
	t.Logf("started on the keyframe at fixture time %d ms", fixV[k].Timestamp)
	if gotV[0].ts > 100 {
		t.Errorf("first video timestamp %d, want near 0", gotV[0].ts)
	}
	for i, m := range gotV {
		if k+i >= len(fixV) {
			break
		}
		w := fixV[k+i]
		if !bytes.Equal(m.payload, w.Payload) {
			t.Fatalf("video frame %d after join differs from fixture frame %d (ts %d)", i, k+i, w.Timestamp)
		}
		if want := w.Timestamp - fixV[k].Timestamp; m.ts != want {
			t.Errorf("video frame %d after join: timestamp %d, want %d", i, m.ts, want)
		}
	}
	checkMonotonic(t, "late joiner", got)
}

// TestTimestampsAndCompositionOffsets publishes the fixture with the Go client to a
// Go player that is already waiting. Every message must arrive in order with its bytes
// intact (an AVC payload carries the composition time offset in bytes 2-4, and the
// fixture has B-frames), and with the fixture's timestamp deltas. Publisher and player
// use the same transport.
func TestTimestampsAndCompositionOffsets(t *testing.T) {
	t.Parallel()
	forEachTransport(t, testTimestamps)
}

func testTimestamps(t *testing.T, transport string) {
	checkPassThrough(t, startRelay(t), transport, "live/cts", 4)
}

// checkPassThrough publishes the fixture at rate× real time to one player on r and
// checks every message arrives with its bytes, in order, with the fixture's timestamps.
func checkPassThrough(t *testing.T, r *testRelay, transport, key string, rate float64) {
	t.Helper()
	tags := fixtureTags(t)
	pl := r.player(t, transport, key)
	pub := r.publisher(t, transport, key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	read := goRead(t, ctx, pl, nil)
	if err := publishAll(ctx, pub, tags, 0, newPacer(rate, 0)); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	res := <-read
	wantUnpublished(t, "player", res)
	compareToTags(t, "player", res.msgs, tags, 0)
	checkMonotonic(t, "player", res.msgs)
}

// TestExtendedTimestamps publishes the fixture with every timestamp above 0xFFFFFF,
// so every chunk header, type 3 continuations included, carries an extended timestamp
// (RTMP 1.0 §5.3.1.3), once from 0x1000000 and once from 0xFFFFF000, which also wraps
// the 32-bit clock 4 s in. An ffmpeg player and a Go player must get every frame, with
// timestamps rebased to 0 and the fixture's deltas, and ffmpeg must decode them all.
// The Go publisher and player use RTMP, or RTMPT; the ffmpeg player uses RTMP.
func TestExtendedTimestamps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		transport string
		off       uint32
	}{
		{"rtmp/from_0x1000000", "rtmp", 0x1000000},
		{"rtmp/wrapping_from_0xFFFFF000", "rtmp", 0xFFFFF000},
		{"rtmpt/from_0x1000000", "rtmpt", 0x1000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testExtendedTimestamps(t, tc.transport, tc.off)
		})
	}
}

func testExtendedTimestamps(t *testing.T, transport string, off uint32) {
	r := startRelay(t)
	const key = "live/ext"
	tags := fixtureTags(t)
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, rtmptest.FixturePath(t)))

	out := filepath.Join(t.TempDir(), "player.flv")
	rec := rtmptest.StartRecorder(t, r.rtmpURL(key), out)
	pl := r.player(t, transport, key)
	waitFor(t, 15*time.Second, "the ffmpeg and Go players", func() bool {
		s, _ := r.stream(t, key)
		return s.Subscribers["rtmp"]+s.Subscribers["rtmpt"] == 2
	})

	pub := r.publisher(t, transport, key)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	read := goRead(t, ctx, pl, nil)
	if err := publishAll(ctx, pub, tags, off, newPacer(4, 0)); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	res := <-read
	wantUnpublished(t, "Go player", res)
	compareToTags(t, "Go player", res.msgs, tags, off)
	checkMonotonic(t, "Go player", res.msgs)

	if err := rec.Wait(ctx); err != nil {
		t.Fatalf("ffmpeg player: %v", err)
	}
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
	if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
		t.Fatalf("ffmpeg player: got %d video %d audio packets, want %d and %d", len(gotV), len(gotA), len(wantV), len(wantA))
	}
	for j := range wantV {
		g, w := gotV[j], wantV[j]
		if g.DataHash != w.DataHash || g.PTS-g.DTS != w.PTS-w.DTS || g.DTS-gotV[0].DTS != w.DTS-wantV[0].DTS {
			t.Fatalf("ffmpeg player video packet %d: got %s dts %d cts %d, want %s dts %d cts %d",
				j, g.DataHash, g.DTS, g.PTS-g.DTS, w.DataHash, w.DTS, w.PTS-w.DTS)
		}
	}
	v, a := rtmptest.DecodeFrames(t, out)
	if v != len(wantV) || a != len(wantA) {
		t.Errorf("ffmpeg player: decoded %d video %d audio frames, want %d and %d", v, a, len(wantV), len(wantA))
	}
}

// TestPublisherReconnect attaches a player, lets publisher A send the first 3.1 s and
// drop its TCP connection without FCUnpublish, then lets publisher B publish the same
// key starting 1 s into a GOP. The player stays attached: it hears
// NetStream.Play.UnpublishNotify, then B's metadata and sequence headers, then B's
// first keyframe (B's frames before it are skipped), with timestamps that keep going
// forward across the switch. Publishers and player use the same transport; over RTMPT
// publisher A's close is a /close of its tunnel.
func TestPublisherReconnect(t *testing.T) {
	t.Parallel()
	forEachTransport(t, testPublisherReconnect)
}

func testPublisherReconnect(t *testing.T, transport string) {
	r := startRelay(t)
	const key = "live/reconnect"
	tags := fixtureTags(t)
	pl := r.player(t, transport, key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var partA []rtmptest.FLVTag // metadata, sequence headers, media before 3.1 s
	var headers []rtmptest.FLVTag
	var partB []rtmptest.FLVTag // media from 1 s to 5 s: starts on a non-keyframe
	for _, tg := range tags {
		media := (tg.TypeID == rtmptest.TypeAudio || tg.TypeID == rtmptest.TypeVideo) && !isSeqHeader(tg.TypeID, tg.Payload)
		if !media {
			headers = append(headers, tg)
		}
		if tg.Timestamp < 3100 {
			partA = append(partA, tg)
		}
		if media && tg.Timestamp >= 1000 && tg.Timestamp < 5000 {
			partB = append(partB, tg)
		}
	}
	partB = append(headers[:len(headers):len(headers)], partB...)

	// Publisher A, then a plain close.
	pubA := r.publisher(t, transport, key)
	read := goRead(t, ctx, pl, nil)
	if err := sendTags(ctx, pubA, partA, 0, newPacer(4, 0)); err != nil {
		t.Fatalf("publisher A: %v", err)
	}
	// An RTMPT client, like ffmpeg's, drops what it has not sent yet when it closes:
	// close once the relay has it all.
	var sizeA int64
	for _, tg := range partA {
		sizeA += int64(len(tg.Payload))
	}
	waitFor(t, 10*time.Second, "the relay to receive all of A", func() bool {
		s, _ := r.stream(t, key)
		return s.BytesIn == sizeA
	})
	pubA.Close()
	resA := <-read
	wantUnpublished(t, "player before the switch", resA)
	if countVideoFrames(partA) != countVideo(resA.msgs) {
		t.Errorf("player got %d video frames from A, A sent %d", countVideo(resA.msgs), countVideoFrames(partA))
	}

	// Publisher B on the same key; the player keeps reading on the same connection.
	pubB := r.publisher(t, transport, key)
	read = goRead(t, ctx, pl, nil)
	if err := publishAll(ctx, pubB, partB, 0, newPacer(4, 1000)); err != nil {
		t.Fatalf("publisher B: %v", err)
	}
	resB := <-read
	wantUnpublished(t, "player after the switch", resB)
	got := resB.msgs
	if len(got) < 4 {
		t.Fatalf("player got %d messages from B", len(got))
	}
	// B's metadata and sequence headers come first, then audio (never held back) and
	// the first video frame, a keyframe: the one at 2 s.
	for i := range 3 {
		if got[i].typeID != headers[i].TypeID || !bytes.Equal(got[i].payload, headers[i].Payload) {
			t.Errorf("message %d after the switch is %v, want B's header %d", i, got[i], i)
		}
	}
	var firstV *rxMsg
	for i := range got[3:] {
		if isVideoFrame(got[3+i].typeID, got[3+i].payload) {
			firstV = &got[3+i]
			break
		}
	}
	if firstV == nil || !isKeyframe(firstV.payload) {
		t.Fatalf("first video frame after the switch: %v, want a keyframe", firstV)
	}
	var key2s []byte
	for _, tg := range partB {
		if isVideoFrame(tg.TypeID, tg.Payload) && isKeyframe(tg.Payload) {
			key2s = tg.Payload
			break
		}
	}
	if !bytes.Equal(firstV.payload, key2s) {
		t.Errorf("first video frame after the switch is not B's first keyframe")
	}
	if countVideo(got) != countVideoFrames(partB)-25 { // the 25 frames of 1..2 s are skipped
		t.Errorf("player got %d video frames from B, want %d", countVideo(got), countVideoFrames(partB)-25)
	}
	all := append(resA.msgs[:len(resA.msgs):len(resA.msgs)], got...)
	checkMonotonic(t, "player across the switch", all)
	last := resA.msgs[len(resA.msgs)-1].ts
	t.Logf("last timestamp from A %d, first from B %d, B's first keyframe at %d", last, got[0].ts, firstV.ts)
	if got[0].ts < last || got[0].ts > last+100 {
		t.Errorf("B's first timestamp %d, want just after A's last, %d", got[0].ts, last)
	}
}

// countVideo counts video frames (not sequence headers) in msgs.
func countVideo(msgs []rxMsg) int {
	n := 0
	for _, m := range msgs {
		if isVideoFrame(m.typeID, m.payload) {
			n++
		}
	}
	return n
}

// TestPlayerBeforePublisher plays a key one second before anybody publishes it: the
// player waits, then gets the metadata, the sequence headers and every frame, starting
// on a keyframe. Publisher and player use the same transport.
func TestPlayerBeforePublisher(t *testing.T) {
	t.Parallel()
	forEachTransport(t, testPlayerBeforePublisher)
}

func testPlayerBeforePublisher(t *testing.T, transport string) {
	r := startRelay(t)
	const key = "live/early"
	var tags []rtmptest.FLVTag
	for _, tg := range fixtureTags(t) {
		if tg.Timestamp < 4000 {
			tags = append(tags, tg)
		}
	}
	pl := r.player(t, transport, key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	read := goRead(t, ctx, pl, nil)
	time.Sleep(time.Second)
	if s, ok := r.stream(t, key); !ok || s.Live || s.Subscribers[transport] != 1 {
		t.Fatalf("before the publisher: stream %+v, want one waiting player", s)
	}
	pub := r.publisher(t, transport, key)
	if err := publishAll(ctx, pub, tags, 0, newPacer(4, 0)); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	res := <-read
	wantUnpublished(t, "player", res)
	compareToTags(t, "player", res.msgs, tags, 0)
	for _, m := range res.msgs {
		if isVideoFrame(m.typeID, m.payload) {
			if !isKeyframe(m.payload) {
				t.Errorf("first video frame is not a keyframe")
			}
			break
		}
	}
}

// TestPlayWaitExpires plays, on a relay with PlayWait 1 s, a key nobody publishes,
// and a key whose publisher leaves. Once PlayWait is over without a publisher, each
// player gets NetStream.Play.StreamNotFound and is disconnected, with a log line.
func TestPlayWaitExpires(t *testing.T) {
	t.Parallel()
	forEachTransport(t, testPlayWaitExpires)
}

func testPlayWaitExpires(t *testing.T, transport string) {
	r, logs := startRelayLogs(t, func(c *Config) { c.PlayWait = time.Second })
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	// Nobody ever publishes.
	start := time.Now()
	nobody := goRead(t, ctx, r.player(t, transport, "live/nobody"), nil)

	// The publisher sends a second of media and leaves.
	gonePlayer := r.player(t, transport, "live/gone")
	gone := goRead(t, ctx, gonePlayer, nil)
	pub := r.publisher(t, "rtmp", "live/gone")
	var second []rtmptest.FLVTag
	for _, tg := range fixtureTags(t) {
		if tg.Timestamp < 1000 {
			second = append(second, tg)
		}
	}
	if err := sendTags(ctx, pub, second, 0, newPacer(0, 0)); err != nil {
		t.Fatal(err)
	}
	left := time.Now() // the relay's wait starts when it reads what follows
	if err := pub.CloseStream(); err != nil {
		t.Fatal(err)
	}
	res := <-gone
	wantUnpublished(t, "player of live/gone", res)
	gone = goRead(t, ctx, gonePlayer, nil)

	for _, w := range []struct {
		key   string
		since time.Time
		read  <-chan readResult
	}{{"live/nobody", start, nobody}, {"live/gone", left, gone}} {
		res := <-w.read
		waited := time.Since(w.since)
		if res.status == nil || res.status.Code != "NetStream.Play.StreamNotFound" || res.status.Level != "error" {
			t.Fatalf("player of %s: got %d messages, status %v, error %v; want NetStream.Play.StreamNotFound",
				w.key, len(res.msgs), res.status, res.err)
		}
		t.Logf("player of %s: StreamNotFound %v after it started to wait", w.key, waited.Round(time.Millisecond))
		if waited < 900*time.Millisecond {
			t.Errorf("player of %s: StreamNotFound after %v, before PlayWait (1s) was over", w.key, waited)
		}
	}
	// Then the relay closes both connections.
	for _, key := range []string{"live/nobody", "live/gone"} {
		waitFor(t, 5*time.Second, "the stream entry of "+key+" to go", func() bool {
			_, ok := r.stream(t, key)
			return !ok
		})
		ev := logs.find(func(l map[string]any) bool { return l["message"] == "subscriber evicted" && l["stream"] == key })
		if len(ev) != 1 || ev[0]["error"] != "relay: no publisher" {
			t.Errorf("want one 'subscriber evicted' log line for %s saying there is no publisher, got %v", key, ev)
		}
	}
	waitFor(t, 5*time.Second, "the players' connections to close", func() bool {
		return len(logs.find(func(l map[string]any) bool {
			return l["message"] == "close" && strings.Contains(fmt.Sprint(l["reason"]), "no publisher")
		})) == 2
	})
}
