package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestMediaNoGoroutineLeak has HTTP-FLV viewers and player-page (fMP4) viewers join a
// live stream and disconnect mid-stream, 40 times each; then the process must be back
// to the goroutines it had before, and the stream must have no subscriber left.
//
// Not parallel: runtime.NumGoroutine counts the whole test process.
func TestMediaNoGoroutineLeak(t *testing.T) {
	const (
		cycles = 40
		margin = 2
	)
	r := startRelay(t)
	rtmptest.StartPublisher(t, r.url("rtmp", "live/leak"), rtmptest.PublishOptions{Loop: true})
	waitFor(t, 10*time.Second, "the publisher", func() bool { s, ok := r.stream(t, "live/leak"); return ok && s.Live })
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	flvViewer := func() {
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /live/leak.flv HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := bufio.NewReader(c).Peek(4096); err != nil {
			t.Fatalf("http-flv viewer: %v", err)
		}
		c.Close()
	}
	pageViewer := func() {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.httpAddr+"/play/live/leak/live.mp4", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("page viewer: %v", err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
			t.Fatalf("page viewer read: %v", err)
		}
		cancel()
		resp.Body.Close()
	}
	// Warm up: the first requests start goroutines that stay (the HTTP server's).
	flvViewer()
	pageViewer()
	waitFor(t, 10*time.Second, "no viewers", func() bool {
		s, _ := r.stream(t, "live/leak")
		return s.Subscribers["http-flv"] == 0 && s.Subscribers["page"] == 0
	})
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()

	for range cycles {
		flvViewer()
		pageViewer()
	}
	waitFor(t, 10*time.Second, "the viewers to leave the hub", func() bool {
		s, _ := r.stream(t, "live/leak")
		return s.Subscribers["http-flv"] == 0 && s.Subscribers["page"] == 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+margin {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines, %d before %d viewer cycles:\n%s", runtime.NumGoroutine(), before, cycles, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
