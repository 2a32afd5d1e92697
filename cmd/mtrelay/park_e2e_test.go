package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestPlayersPark checks the goroutine-free waiting of RTMP players: once playing,
// every player is parked on the poller (mtrelay_rtmp_connections_parked), still gets
// every frame, still gets answers to what it sends (a seek on a live stream is
// answered Seek.Failed), and hears the end of the stream and of the server when they
// come while it is parked.
func TestPlayersPark(t *testing.T) {
	const players = 12
	r := startRelay(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tags := fixtureTags(t)

	pub := r.publisher(t, "rtmp", "live/park")
	stop := livePublisher(t, ctx, pub, loopTags(tags, 3), newPacer(2, 0))

	cs := make([]*rtmptest.Client, players)
	for i := range cs {
		cs[i] = r.player(t, "rtmp", "live/park")
		// The first keyframe arrives while the player may already be parked.
		if _, _, err := readUntilStatus(ctx, cs[i], func(m rxMsg) bool { return isVideoFrame(m.typeID, m.payload) && isKeyframe(m.payload) }); err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
	}
	r.waitMetrics(t, "every player parked", func(m map[string]float64) bool {
		return m["mtrelay_rtmp_connections_parked"] == players
	})

	// A parked player is resumed by what it sends and answered.
	cs[0].SetTimeout(5 * time.Second)
	err := cs[0].Seek(1000)
	if se, ok := errors.AsType[*rtmptest.StatusError](err); !ok || se.Code != "NetStream.Seek.Failed" {
		t.Fatalf("seek on a live stream from a parked player: %v, want NetStream.Seek.Failed", err)
	}
	// Every player keeps receiving media while parked: a few more video frames each.
	for i, c := range cs {
		n := 0
		if _, _, err := readUntilStatus(ctx, c, func(m rxMsg) bool {
			if isVideoFrame(m.typeID, m.payload) {
				n++
			}
			return n == 10
		}); err != nil {
			t.Fatalf("player %d after parking: %v", i, err)
		}
	}
	r.waitMetrics(t, "players parked again after the seek", func(m map[string]float64) bool {
		return m["mtrelay_rtmp_connections_parked"] == players
	})

	// A player that leaves while parked is resumed by its hang-up and ends.
	cs[players-1].Close()
	r.waitMetrics(t, "the closed player gone", func(m map[string]float64) bool {
		return m["mtrelay_rtmp_connections_parked"] == players-1 && m[`mtrelay_subscribers{protocol="rtmp"}`] == players-1
	})

	// The publisher leaves: every parked player hears UnpublishNotify.
	stop()
	for i, c := range cs[:players-1] {
		_, se, err := readUntilStatus(ctx, c, nil)
		if err != nil || se == nil || se.Code != "NetStream.Play.UnpublishNotify" {
			t.Fatalf("player %d: end of stream: %v %v, want NetStream.Play.UnpublishNotify", i, se, err)
		}
	}
	// Shutdown with parked players: each is told and closed, and run returns.
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("relay run: %v", err)
		}
		r.done <- nil // for launchRelay's cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("relay with parked players did not stop within 10s")
	}
	for i, c := range cs[:players-1] {
		var codes []string
		for {
			_, se, err := readUntilStatus(ctx, c, nil)
			if err != nil {
				break // closed
			}
			if codes = append(codes, se.Code); len(codes) > 4 {
				t.Fatalf("player %d: still open after shutdown, statuses %v", i, codes)
			}
		}
		if len(codes) == 0 || codes[len(codes)-1] != "NetStream.Play.Stop" {
			t.Errorf("player %d: statuses at shutdown %v, want them to end with NetStream.Play.Stop", i, codes)
		}
	}
}
