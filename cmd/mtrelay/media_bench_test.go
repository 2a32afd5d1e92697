package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// startBenchRelay runs the relay in-process on 127.0.0.1 ports for a benchmark.
func startBenchRelay(b *testing.B) (rtmpAddr, httpAddr string) {
	b.Helper()
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, zerolog.Nop(), listeners{rtmp: rl, http: hl}) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return rl.Addr().String(), hl.Addr().String()
}

// BenchmarkPlaybackFanout measures the relay's cost of serving one published stream
// (the fixture's H.264+AAC tags, sent as fast as the viewers keep up, in lockstep
// batches of 64) to N HTTP-FLV viewers or N RTMP players over loopback. ns/op and
// allocs/op are per published packet for the whole process, clients included:
// HTTP-FLV viewers are raw sockets drained with io.Copy (no allocations), RTMP players
// are rtmptest clients, which parse chunks and allocate per message, so the RTMP
// numbers carry their client's cost too. ns/viewer-packet divides by N.
func BenchmarkPlaybackFanout(b *testing.B) {
	tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, proto := range []string{"http-flv", "rtmp"} {
		for _, n := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("proto=%s/viewers=%d", proto, n), func(b *testing.B) {
				benchFanout(b, tags, proto, n)
			})
		}
	}
}

func benchFanout(b *testing.B, tags []rtmptest.FLVTag, proto string, n int) {
	rtmpAddr, httpAddr := startBenchRelay(b)
	ctx := b.Context()
	pub, err := rtmptest.Dial(ctx, rtmpAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Connect("live", "rtmp://"+rtmpAddr+"/live"); err != nil {
		b.Fatal(err)
	}
	if err := pub.Publish("bench"); err != nil {
		b.Fatal(err)
	}
	// Sequence headers first, so every viewer starts at once.
	var media []rtmptest.FLVTag
	for _, tg := range tags {
		if tg.TypeID == rtmptest.TypeData || isSeqHeaderTag(tg) {
			if err := pub.WriteMedia(tg.TypeID, 0, tg.Payload); err != nil {
				b.Fatal(err)
			}
			continue
		}
		media = append(media, tg)
	}

	// received counts, per viewer, the media messages (RTMP) or bytes (HTTP-FLV).
	received := make([]atomic.Int64, n)
	for i := range n {
		switch proto {
		case "http-flv":
			c, err := net.Dial("tcp", httpAddr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /live/bench.flv HTTP/1.1\r\nHost: bench\r\n\r\n")
			go func() {
				buf := make([]byte, 64<<10)
				for {
					k, err := c.Read(buf)
					received[i].Add(int64(k))
					if err != nil {
						return
					}
				}
			}()
		case "rtmp":
			cl, err := rtmptest.Dial(ctx, rtmpAddr)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Connect("live", "rtmp://"+rtmpAddr+"/live"); err != nil {
				b.Fatal(err)
			}
			if err := cl.Play("bench"); err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					m, err := cl.ReadMedia(ctx)
					if err != nil {
						return
					}
					received[i].Add(int64(len(m.Payload)) + 15)
				}
			}()
		}
	}
	// Wait until every viewer got the sequence headers, then measure.
	settle := func(want int64) {
		deadline := time.Now().Add(30 * time.Second)
		for i := range n {
			for received[i].Load() < want {
				if time.Now().After(deadline) {
					b.Fatalf("viewer %d got %d bytes, want %d", i, received[i].Load(), want)
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	settle(1)
	base := make([]int64, n)
	time.Sleep(100 * time.Millisecond)
	for i := range n {
		base[i] = received[i].Load()
	}
	minBase := base[0]
	for _, v := range base {
		minBase = min(minBase, v)
	}

	b.ReportAllocs()
	var sent int64
	ts := uint32(0)
	k := 0
	for b.Loop() {
		tg := media[k%len(media)]
		if k > 0 && k%len(media) == 0 {
			ts += 10_040
		}
		if err := pub.WriteMedia(tg.TypeID, ts+tg.Timestamp, tg.Payload); err != nil {
			b.Fatal(err)
		}
		sent += int64(len(tg.Payload)) + 15
		k++
		if k%64 == 0 {
			settle(minBase + sent)
		}
	}
	settle(minBase + sent)
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(k)/float64(n), "ns/viewer-packet")
	b.SetBytes(sent / int64(max(k, 1)))
}

func isSeqHeaderTag(tg rtmptest.FLVTag) bool {
	return (tg.TypeID == rtmptest.TypeVideo || tg.TypeID == rtmptest.TypeAudio) && len(tg.Payload) > 1 && tg.Payload[1] == 0
}
