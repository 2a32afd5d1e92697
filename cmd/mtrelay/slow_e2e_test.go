//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialSlow dials addr with a 4 KiB receive buffer and an MSS of 1460 bytes, set before
// the connection is made. On loopback the MSS is 64 KiB, and Linux sizes a socket's
// send buffer from it (about 20 segments): the relay's kernel would then absorb
// megabytes, more than this test's whole stream, for a player that reads nothing. An
// Ethernet-sized MSS gives it the send buffer a player on a real network gets, so a
// player that stops reading is felt within a second.
func dialSlow(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1460)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return d.DialContext(ctx, "tcp", addr)
}

// TestSlowSubscriberIsolated publishes the fixture in a loop to two players that read
// and one that stops reading after the handshake (a raw TCP client with a small
// receive buffer). The reading players must get every frame with no stall, while the
// slow one is disconnected with a log line saying why: by the hub once it has stayed
// behind its queue limit for SlowGrace (its video dropped meanwhile), or by the
// writer's WriteTimeout when the hub's limits are far away.
//
// Time is compressed: the publisher sends at twice real time. The players' receive
// gaps are a functional bound, not a speed benchmark: had the slow player held up the
// others, they would have stalled for the whole SlowGrace or WriteTimeout.
func TestSlowSubscriberIsolated(t *testing.T) {
	t.Parallel()
	t.Run("evicted_by_hub", func(t *testing.T) {
		t.Parallel()
		testSlowSubscriber(t, func(c *Config) {
			c.QueueDuration = 3 * time.Second // 1.5 s of wall time: slack for the reading players
			c.SlowGrace = 2 * time.Second
			c.WriteTimeout = 10 * time.Second // above queue+grace, so the hub is what evicts
		}, "play: relay: subscriber too slow", true)
	})
	t.Run("write_timeout", func(t *testing.T) {
		t.Parallel()
		testSlowSubscriber(t, func(c *Config) {
			c.QueueDuration = time.Minute // the hub would wait for long
			c.SlowGrace = time.Minute
			c.WriteTimeout = 2 * time.Second
		}, "i/o timeout", false)
	})
}

func testSlowSubscriber(t *testing.T, cfg func(*Config), wantReason string, wantEvicted bool) {
	const (
		key      = "live/slow"
		rate     = 2
		maxGapOK = time.Second
	)
	r, logs := startRelayLogs(t, cfg)

	// Two players that keep reading, attached before the publisher.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var reads []<-chan readResult
	for range 2 {
		reads = append(reads, goRead(t, ctx, r.player(t, "rtmp", key), nil))
	}
	pub := r.publisher(t, "rtmp", key)
	p := newPacer(rate, 0)
	// At most 40 s of media: the publisher is stopped once the slow player is gone.
	stopPub := livePublisher(t, ctx, pub, loopTags(fixtureTags(t), 4), p)

	// The slow player joins half a second in and never reads (after the handshake).
	if err := p.wait(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	slow := startSlowPlayer(t, ctx, r, key)
	defer slow.Close()
	slowJoined := time.Now()
	waitFor(t, 10*time.Second, "the slow player to join", func() bool { return r.subscribers(t, key, "rtmp") == 3 })
	// Then it is dropped, while the stream goes on.
	waitFor(t, 20*time.Second, "the slow player to be disconnected", func() bool {
		return r.subscribers(t, key, "rtmp") == 2
	})
	goneAfter := time.Since(slowJoined)
	s, _ := r.stream(t, key)
	t.Logf("slow player gone %v after joining; stream stats: evicted %d, dropped %d, live %v", goneAfter.Round(time.Millisecond), s.Evicted, s.Dropped, s.Live)
	if !s.Live {
		t.Fatalf("the publisher was gone before the slow player was: the test did not run long enough")
	}
	if wantEvicted && (s.Evicted != 1 || s.Dropped == 0) {
		t.Errorf("stream stats: evicted %d, dropped %d; want 1 evicted subscriber and some dropped frames", s.Evicted, s.Dropped)
	}
	closedAfter, err := expectClosed(t, "slow player", slow, 10*time.Second)
	t.Logf("slow player's socket read %v after draining for %v", err, closedAfter.Round(time.Millisecond))

	// The relay said why.
	slowRemote := slow.LocalAddr().String()
	if wantEvicted {
		ev := logs.find(func(l map[string]any) bool { return l["message"] == "subscriber evicted" && l["remote"] == slowRemote })
		if len(ev) != 1 || !strings.Contains(fmt.Sprint(ev[0]["error"]), "too slow") {
			t.Errorf("want one 'subscriber evicted' log line saying the player is too slow, got %v", ev)
		}
	}
	closes := logs.find(func(l map[string]any) bool { return l["message"] == "close" && l["remote"] == slowRemote })
	if len(closes) != 1 || !strings.Contains(fmt.Sprint(closes[0]["reason"]), wantReason) {
		t.Errorf("want a 'close' log line for the slow player with reason %q, got %v", wantReason, closes)
	} else {
		t.Logf("relay closed the slow player: %v", closes[0]["reason"])
	}

	// A second more of the stream after the slow player is gone, then the end.
	time.Sleep(time.Second)
	tags := stopPub()
	for i, read := range reads {
		res := <-read
		who := fmt.Sprintf("player %d", i)
		wantUnpublished(t, who, res)
		compareToTags(t, who, res.msgs, tags, 0)
		var maxGap time.Duration
		var maxAt, last time.Time
		for _, m := range res.msgs {
			if !isVideoFrame(m.typeID, m.payload) {
				continue
			}
			if !last.IsZero() && m.at.Sub(last) > maxGap {
				maxGap, maxAt = m.at.Sub(last), m.at
			}
			last = m.at
		}
		t.Logf("%s: %d video frames, max gap between video frames %v (%v after the slow player joined; nominal gap %v, %v between passes)",
			who, countVideo(res.msgs), maxGap.Round(time.Millisecond), maxAt.Sub(slowJoined).Round(time.Millisecond),
			time.Duration(float64(40*time.Millisecond)/rate), time.Duration(float64(120*time.Millisecond)/rate))
		if maxGap >= maxGapOK {
			t.Errorf("%s: stalled for %v", who, maxGap)
		}
	}
}

// startSlowPlayer connects a player of key that never reads (tiny receive buffer, see
// dialSlow): handshake, connect, createStream and play, written without reading the
// answers.
func startSlowPlayer(t *testing.T, ctx context.Context, r *testRelay, key string) net.Conn {
	t.Helper()
	slow, err := dialSlow(ctx, r.rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := rawHandshake(slow); err != nil {
		slow.Close()
		t.Fatal(err)
	}
	if _, err := slow.Write(connectPlayCommands(t, r.rtmpAddr, key)); err != nil {
		slow.Close()
		t.Fatal(err)
	}
	return slow
}
