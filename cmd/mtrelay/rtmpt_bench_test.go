package main

import (
	"github.com/mtrelay/mtrelay/cmd/rtmpload/procstat"

	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// BenchmarkRTMPTPlayers measures N RTMPT players against N RTMP players on one stream,
// end to end over loopback: a Go publisher sends the fixture at real time (10 s) to the
// relay binary, run as a child process (startRelayProc), and N Go players of one
// transport (RTMPT: tunneltest.Conn behaving like ffmpeg) plus one RTMP reference
// player receive it. Metrics:
//   - Mbit/s: media payload delivered to the N players per second of wall time;
//   - relay-cpu-%/player: CPU time of the relay process alone (utime+stime from
//     /proc/PID/stat, so the Go clients in the test process do not count) per second
//     of wall time, divided by N;
//   - lat-p50-ms, lat-p95-ms: how much later each video frame reached a player of the
//     transport than the RTMP reference player (the added latency of the polling loop;
//     about 0 for transport=rtmp).
//
// B/op and allocs/op are the test process's (the clients), not the relay's. One
// iteration takes ~11 s for RTMP and ~20 s for RTMPT (opening 20 tunnels one after the
// other takes ~8 s, outside the measured window); run with -bench RTMPTPlayers
// -benchtime 1x. Linux only (/proc).
func BenchmarkRTMPTPlayers(b *testing.B) {
	bin := buildRelay(b)
	for _, tr := range []string{"rtmp", "rtmpt"} {
		b.Run("players=20/transport="+tr, func(b *testing.B) { benchPlayers(b, bin, tr, 20) })
	}
}

// benchPlayer is one Go player's receive log.
type benchPlayer struct {
	c       *rtmptest.Client
	bytes   int64
	arrival map[uint32]time.Time // first arrival of each video timestamp
}

func benchPlayers(b *testing.B, bin, transport string, n int) {
	b.ReportAllocs()
	tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(b))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r := startRelayProc(b, bin)
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
		cpu0 := r.cpu(b)
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
		cpu := r.cpu(b) - cpu0
		if err := pub.CloseStream(); err != nil && !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
		pub.Close()
		wg.Wait()
		cancel()

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
		b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds()/float64(n), "relay-cpu-%/player")
		b.ReportMetric(lat[len(lat)/2], "lat-p50-ms")
		b.ReportMetric(lat[len(lat)*95/100], "lat-p95-ms")
	}
}

// buildRelay builds ./cmd/mtrelay into a temporary directory and returns the binary.
func buildRelay(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "mtrelay")
	if out, err := exec.CommandContext(tb.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// relayProc is the relay binary running as a child process, with its listeners on
// 127.0.0.1 ports chosen by the kernel.
type relayProc struct {
	cmd      *exec.Cmd
	rtmpAddr string
	httpAddr string
	logs     *logBuffer // its log lines after "mtrelay listening"
}

// startRelayProc starts bin (with extra flags args) and waits for its "mtrelay
// listening" line (JSON, fields rtmp and http; see TestSIGTERMGracefulShutdown). It is
// stopped with SIGTERM, and killed if it does not exit within 10 s, when tb ends.
func startRelayProc(tb testing.TB, bin string, args ...string) *relayProc {
	tb.Helper()
	cmd := exec.CommandContext(tb.Context(), bin, append([]string{"--rtmp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info"}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	r := &relayProc{cmd: cmd, logs: &logBuffer{}}
	logDone := make(chan struct{})
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-logDone:
		case <-time.After(10 * time.Second):
			tb.Errorf("relay did not exit within 10 s of SIGTERM")
			cmd.Process.Kill()
		}
		cmd.Wait()
	}
	lines := bufio.NewScanner(stderr)
	var head strings.Builder
	for r.rtmpAddr == "" && lines.Scan() {
		head.Write(lines.Bytes())
		head.WriteByte('\n')
		var l struct {
			Message string `json:"message"`
			RTMP    string `json:"rtmp"`
			HTTP    string `json:"http"`
		}
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Message == "mtrelay listening" {
			r.rtmpAddr, r.httpAddr = l.RTMP, l.HTTP
		}
	}
	go func() {
		defer close(logDone)
		for lines.Scan() {
			r.logs.Write(lines.Bytes())
			r.logs.Write([]byte{'\n'})
		}
	}()
	if r.rtmpAddr == "" || r.httpAddr == "" {
		stop()
		tb.Fatalf("relay did not log its listening addresses:\n%s", head.String())
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("relay log:\n%s", r.logs.String())
		}
	})
	return r
}

// cpu returns the relay's user+system CPU time so far.
func (r *relayProc) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := procstat.CPU(r.cmd.Process.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
