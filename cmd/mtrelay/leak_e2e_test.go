package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestNoGoroutineLeak runs 200 RTMP connect/disconnect cycles of every kind against
// one relay, from four clients at a time: connect and close; play a live stream and
// close mid-stream; play a key nobody publishes and close while waiting; publish a few
// frames and close, half of them after FCUnpublish/deleteStream and half abruptly;
// and garbage instead of a handshake. And ten over RTMPT. Then the process must
// be back to the number of goroutines it had before, within a small margin.
//
// It does not call t.Parallel: runtime.NumGoroutine counts the whole test process, so
// the test runs in the sequential phase, while every parallel test is paused.
func TestNoGoroutineLeak(t *testing.T) {
	const (
		cycles      = 200
		rtmptCycles = 10 // divides cycles
		workers     = 4
		margin      = 2
	)
	r := startRelay(t, func(c *Config) { c.PlayWait = time.Minute })
	tags := fixtureTags(t)
	var firstSecond []rtmptest.FLVTag
	for _, tg := range tags {
		if tg.Timestamp < 1000 {
			firstSecond = append(firstSecond, tg)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	r.warmUp(ctx, t)
	base := settledGoroutines()
	// A live stream for the players, looping the fixture at 4 times real time.
	live, err := dialConnect(ctx, r.rtmpAddr, "live")
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Publish("leak-live"); err != nil {
		t.Fatal(err)
	}
	liveCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan error, 1)
	go func() { liveDone <- sendTags(liveCtx, live, loopTags(tags, 3), 0, newPacer(4, 0)) }()

	jobs := make(chan int)
	errs := make(chan error, cycles+rtmptCycles)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if i >= cycles {
					if err := leakCycleRTMPT(ctx, r, i, firstSecond); err != nil {
						errs <- fmt.Errorf("rtmpt cycle %d (kind %d): %w", i, i%3, err)
					}
				} else if err := leakCycle(ctx, r.rtmpAddr, i, firstSecond); err != nil {
					errs <- fmt.Errorf("cycle %d (kind %d): %w", i, i%6, err)
				}
			}
		})
	}
	// The RTMPT cycles (each tunnel an HTTP client of its own) are spread among the
	// RTMP ones.
	for i := range cycles {
		if i%(cycles/rtmptCycles) == 0 {
			jobs <- cycles + i/(cycles/rtmptCycles)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	stopLive()
	if err := <-liveDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("live publisher: %v", err)
	}
	live.Close()

	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > base+margin && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	t.Logf("goroutines: %d before, %d after %d RTMP and %d RTMPT cycles", base, n, cycles, rtmptCycles)
	if n > base+margin {
		var dump bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&dump, 2)
		t.Fatalf("%d goroutines after %d cycles, %d before: leak\n%s", n, cycles, base, dump.String())
	}
}

// warmUp serves one RTMP connection: once it is served, every goroutine the relay
// keeps (listeners, servers) runs, so a goroutine count taken after it (when the
// number has settled) is the relay's base.
func (r *testRelay) warmUp(ctx context.Context, t *testing.T) {
	t.Helper()
	c, err := dialConnect(ctx, r.rtmpAddr, "live")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// settledGoroutines returns runtime.NumGoroutine once it read the same twice in a row,
// 100 ms apart (or after 2 s).
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// leakCycle runs connect/disconnect cycle i; its kind is i%6.
func leakCycle(ctx context.Context, addr string, i int, frames []rtmptest.FLVTag) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if i%6 == 5 { // garbage instead of a handshake
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			return errors.New("the relay answered garbage")
		}
		return nil
	}
	c, err := dialConnect(ctx, addr, "live")
	if err != nil {
		return err
	}
	defer c.Close()
	switch i % 6 {
	case 0: // connect, close
	case 1: // play a live stream, get a frame, close
		if err := c.Play("leak-live"); err != nil {
			return err
		}
		for {
			m, err := c.ReadMedia(ctx)
			if err != nil {
				return err
			}
			if isVideoFrame(m.TypeID, m.Payload) {
				break
			}
		}
	case 2: // play a key nobody publishes, close while waiting
		if err := c.Play(fmt.Sprintf("leak-nobody-%d", i)); err != nil {
			return err
		}
	case 3, 4: // publish a few frames; close cleanly (3) or abruptly (4)
		if err := c.Publish(fmt.Sprintf("leak-pub-%d", i)); err != nil {
			return err
		}
		if err := sendTags(ctx, c, frames[:20], 0, newPacer(0, 0)); err != nil {
			return err
		}
		if i%6 == 3 {
			if err := c.CloseStream(); err != nil {
				return err
			}
		}
	}
	return nil
}

// leakCycleRTMPT runs RTMPT cycle i: connect (kind 0), play the live stream (1) or
// publish a few frames (2), then close the tunnel.
func leakCycleRTMPT(ctx context.Context, r *testRelay, i int, frames []rtmptest.FLVTag) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := r.dial(ctx, "rtmpt")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Connect("live", r.url("rtmpt", "live")); err != nil {
		return err
	}
	switch i % 3 {
	case 1:
		if err := c.Play("leak-live"); err != nil {
			return err
		}
		if _, err := c.ReadMedia(ctx); err != nil {
			return err
		}
	case 2:
		if err := c.Publish(fmt.Sprintf("leak-rtmpt-%d", i)); err != nil {
			return err
		}
		return sendTags(ctx, c, frames[:20], 0, newPacer(0, 0))
	}
	return nil
}
