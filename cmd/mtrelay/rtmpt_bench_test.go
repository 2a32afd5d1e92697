package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// BenchmarkRTMPTPlayers measures N RTMPT players against N RTMP players on one stream,
// end to end over loopback: a Go publisher sends the fixture at real time (10 s) to an
// in-process relay, N Go players of one transport (RTMPT: tunneltest.Conn behaving like
// ffmpeg) plus one RTMP reference player receive it. Metrics:
//   - Mbit/s: media payload delivered to the N players per second of wall time;
//   - cpu-%/player: CPU time of the test process (relay and all Go clients; getrusage)
//     per second of wall time, divided by N;
//   - lat-p50-ms, lat-p95-ms: how much later each video frame reached a player of the
//     transport than the RTMP reference player (the added latency of the polling loop;
//     about 0 for transport=rtmp).
//
// One iteration takes ~11 s; run with -bench RTMPTPlayers -benchtime 1x.
func BenchmarkRTMPTPlayers(b *testing.B) {
	for _, tr := range []string{"rtmp", "rtmpt"} {
		b.Run("players=20/transport="+tr, func(b *testing.B) { benchPlayers(b, tr, 20) })
	}
}

// benchPlayer is one Go player's receive log.
type benchPlayer struct {
	c       *rtmptest.Client
	bytes   int64
	arrival map[uint32]time.Time // first arrival of each video timestamp
}

func benchPlayers(b *testing.B, transport string, n int) {
	b.ReportAllocs()
	tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(b))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r := startExtRelay(b, extOptions{quiet: true})
		ctx, cancel := context.WithTimeout(b.Context(), 60*time.Second)
		dial := func(tr string) *rtmptest.Client {
			var c *rtmptest.Client
			var err error
			if tr == "rtmpt" {
				var conn *tunneltest.Conn
				conn, err = tunneltest.Dial(ctx, "http://"+r.httpAddr)
				if err == nil {
					c, err = rtmptest.NewClientContext(ctx, conn)
				}
			} else {
				c, err = rtmptest.Dial(ctx, r.rtmpAddr)
			}
			if err == nil {
				err = c.Connect("live", tr+"://127.0.0.1/live")
			}
			if err != nil {
				b.Fatalf("%s client: %v", tr, err)
			}
			return c
		}
		players := make([]*benchPlayer, n+1) // players[n] is the RTMP reference
		for i := range players {
			tr := transport
			if i == n {
				tr = "rtmp"
			}
			p := &benchPlayer{c: dial(tr), arrival: make(map[uint32]time.Time, 300)}
			if err := p.c.Play("bench"); err != nil {
				b.Fatalf("play: %v", err)
			}
			players[i] = p
		}
		pub := dial("rtmp")
		if err := pub.Publish("bench"); err != nil {
			b.Fatalf("publish: %v", err)
		}

		var wg sync.WaitGroup
		for _, p := range players {
			wg.Go(func() {
				for {
					m, err := p.c.ReadMedia(ctx)
					if err != nil {
						return // UnpublishNotify at the end
					}
					p.bytes += int64(len(m.Payload))
					if m.TypeID == rtmptest.TypeVideo {
						if _, ok := p.arrival[m.Timestamp]; !ok {
							p.arrival[m.Timestamp] = time.Now()
						}
					}
				}
			})
		}
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		for _, tg := range tags {
			if d := time.Until(start.Add(time.Duration(tg.Timestamp) * time.Millisecond)); d > 0 {
				time.Sleep(d)
			}
			payload := tg.Payload
			if tg.TypeID == rtmptest.TypeData {
				continue
			}
			if err := pub.WriteMedia(tg.TypeID, tg.Timestamp, payload); err != nil {
				b.Fatalf("publisher: %v", err)
			}
		}
		time.Sleep(500 * time.Millisecond) // let the players drain
		elapsed := time.Since(start)
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		if err := pub.CloseStream(); err != nil && !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
		pub.Close()
		wg.Wait()
		cancel()

		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()+ru1.Stime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
		var total int64
		var lat []float64
		ref := players[n]
		for _, p := range players[:n] {
			total += p.bytes
			for ts, at := range p.arrival {
				if rt, ok := ref.arrival[ts]; ok {
					lat = append(lat, float64(at.Sub(rt))/float64(time.Millisecond))
				}
			}
			p.c.Close()
		}
		ref.c.Close()
		if len(lat) == 0 {
			b.Fatal("no video frame reached both a player and the reference")
		}
		slices.Sort(lat)
		b.SetBytes(total)
		b.ReportMetric(float64(total)*8/1e6/elapsed.Seconds(), "Mbit/s")
		b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds()/float64(n), "cpu-%/player")
		b.ReportMetric(lat[len(lat)/2], "lat-p50-ms")
		b.ReportMetric(lat[len(lat)*95/100], "lat-p95-ms")
	}
}
