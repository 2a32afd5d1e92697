package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape fetches a Prometheus text exposition from url and returns every sample by
// its series, e.g. `mtrelay_subscribers{protocol="rtmp"}` → 1.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *testRelay) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	return scrape(t, "http://"+r.httpAddr+"/metrics")
}

// waitMetrics scrapes until cond holds, and returns that scrape.
func (r *testRelay) waitMetrics(t *testing.T, what string, cond func(m map[string]float64) bool) map[string]float64 {
	t.Helper()
	var m map[string]float64
	waitFor(t, 15*time.Second, what, func() bool {
		m = r.metrics(t)
		return cond(m)
	})
	return m
}

// TestMetricsEndToEnd scrapes /metrics while one RTMP publisher feeds an RTMP, an
// RTMPT and an HTTP-FLV player, and checks the gauges against what is connected and
// that the byte counters move; then it checks a bad handshake and the disconnects
// are counted under their reason.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	const key = "live/metrics"
	r := startRelay(t, func(c *Config) { c.MetricsPerStream = true })

	m := r.metrics(t)
	for _, s := range []string{"mtrelay_streams", `mtrelay_subscribers{protocol="hls"}`, "mtrelay_bytes_in_total",
		`mtrelay_subscribers_disconnected_total{protocol="page",reason="kicked"}`, `mtrelay_logins_total{result="limited"}`,
		`mtrelay_http_sessions{kind="login"}`, "mtrelay_database_errors_total", `mtrelay_access_decisions_total{action="play",result="refused"}`,
		`mtrelay_rtmp_handshake_failures_total{reason="bad_version"}`, "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := m[s]; !ok {
			t.Errorf("idle relay: no series %s", s)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	pub := r.publisher(t, "rtmp", key)
	stopPub := livePublisher(t, ctx, pub, loopTags(fixtureTags(t), 3), newPacer(2, 0))
	rtmpPlayer, rtmptPlayer := r.player(t, "rtmp", key), r.player(t, "rtmpt", key)
	reads := []<-chan readResult{goRead(t, ctx, rtmpPlayer, nil), goRead(t, ctx, rtmptPlayer, nil)}
	flv := readProgress(t, getBody(t, "http://"+r.httpAddr+"/"+key+".flv"))

	first := r.waitMetrics(t, "one publisher and three players in the metrics", func(m map[string]float64) bool {
		return m[`mtrelay_publishers{protocol="rtmp"}`] == 1 &&
			m[`mtrelay_subscribers{protocol="rtmp"}`] == 1 &&
			m[`mtrelay_subscribers{protocol="rtmpt"}`] == 1 &&
			m[`mtrelay_subscribers{protocol="http-flv"}`] == 1 &&
			m["mtrelay_bytes_out_total"] > 0
	})
	for s, want := range map[string]float64{
		"mtrelay_streams":                            1,
		"mtrelay_rtmpt_tunnels":                      1,
		"mtrelay_rtmp_connections":                   3, // publisher, RTMP player, RTMPT player
		`mtrelay_stream_live{stream="live/metrics"}`: 1,
		`mtrelay_stream_subscribers{protocol="http-flv",stream="live/metrics"}`: 1,
		`mtrelay_subscribers{protocol="hls"}`:                                   0,
		"mtrelay_streams_omitted":                                               0,
	} {
		if got := first[s]; got != want {
			t.Errorf("%s = %v, want %v", s, got, want)
		}
	}

	// Bytes keep moving, in and out, while the stream plays.
	second := r.waitMetrics(t, "bytes to move", func(m map[string]float64) bool {
		return m["mtrelay_bytes_in_total"] > first["mtrelay_bytes_in_total"] &&
			m["mtrelay_bytes_out_total"] > first["mtrelay_bytes_out_total"]+3*(m["mtrelay_bytes_in_total"]-first["mtrelay_bytes_in_total"])/2
	})
	t.Logf("bytes in %v → %v, out %v → %v; HTTP-FLV viewer read %d bytes", first["mtrelay_bytes_in_total"], second["mtrelay_bytes_in_total"],
		first["mtrelay_bytes_out_total"], second["mtrelay_bytes_out_total"], flv.bytes.Load())
	if flv.bytes.Load() == 0 {
		t.Error("the HTTP-FLV viewer read nothing")
	}

	// Something that is not RTMP on the RTMP port fails the handshake.
	nc, err := net.Dial("tcp", r.rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "GET / HTTP/1.1\r\n\r\n")
	r.waitMetrics(t, "the bad handshake to be counted", func(m map[string]float64) bool {
		return m[`mtrelay_rtmp_handshake_failures_total{reason="bad_version"}`] == 1
	})
	nc.Close()

	// The publisher leaves, the players hear it and hang up: they are counted as
	// closed by the client.
	stopPub()
	for _, read := range reads {
		<-read
	}
	r.waitMetrics(t, "the publisher to leave", func(m map[string]float64) bool {
		return m[`mtrelay_publishers{protocol="rtmp"}`] == 0 && m[`mtrelay_stream_live{stream="live/metrics"}`] == 0
	})
	rtmpPlayer.Close()
	rtmptPlayer.Close()
	end := r.waitMetrics(t, "the players' disconnects", func(m map[string]float64) bool {
		return m[`mtrelay_subscribers{protocol="rtmp"}`] == 0 && m[`mtrelay_subscribers{protocol="rtmpt"}`] == 0 &&
			m[`mtrelay_rtmp_disconnects_total{reason="client_closed"}`] == 2 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="rtmp",reason="client_closed"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="rtmpt",reason="client_closed"}`] == 1
	})
	if end["mtrelay_bytes_in_total"] < second["mtrelay_bytes_in_total"] || end["mtrelay_bytes_out_total"] < second["mtrelay_bytes_out_total"] {
		t.Errorf("byte counters went down: in %v → %v, out %v → %v", second["mtrelay_bytes_in_total"], end["mtrelay_bytes_in_total"],
			second["mtrelay_bytes_out_total"], end["mtrelay_bytes_out_total"])
	}
	if got := end[`mtrelay_rtmp_connections_accepted_total`]; got < 4 {
		t.Errorf("accepted connections %v, want at least 4", got)
	}
}

// TestMetricsAddr serves /metrics on --metrics-addr, not on the HTTP port, and
// limits the per-stream series to --metrics-max-streams streams.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	r, logs := startRelayLogs(t, func(c *Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.MetricsPerStream = true
		c.MetricsMaxStreams = 1
	})
	var addr string
	waitFor(t, 5*time.Second, "the metrics listener's log line", func() bool {
		l := logs.find(func(l map[string]any) bool { return l["message"] == "metrics listening" })
		if len(l) == 1 {
			addr, _ = l[0]["metrics"].(string)
		}
		return addr != ""
	})
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the HTTP port with --metrics-addr: %s, want 404", resp.Status)
	}

	// Two streams with a waiting player each (the first has two): only the first is
	// exported.
	r.player(t, "rtmp", "live/a")
	r.player(t, "rtmp", "live/a")
	r.player(t, "rtmp", "live/b")
	var m map[string]float64
	waitFor(t, 10*time.Second, "three waiting players", func() bool {
		m = scrape(t, "http://"+addr+"/metrics")
		return m[`mtrelay_subscribers{protocol="rtmp"}`] == 3
	})
	if m[`mtrelay_stream_subscribers{protocol="rtmp",stream="live/a"}`] != 2 || m["mtrelay_streams_omitted"] != 1 {
		t.Errorf("per-stream series: live/a %v subscribers, %v streams omitted; want 2 and 1",
			m[`mtrelay_stream_subscribers{protocol="rtmp",stream="live/a"}`], m["mtrelay_streams_omitted"])
	}
	for s := range m {
		if strings.Contains(s, `stream="live/b"`) {
			t.Errorf("series %s beyond --metrics-max-streams 1", s)
		}
	}
}

// TestMetricsPlayerBadInput: an RTMP player that sends what the relay cannot parse
// (a message longer than --max-message-size) is closed, and its subscriber counted
// under bad_input in subscribers_disconnected_total, not as a client that left.
func TestMetricsPlayerBadInput(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	const key = "live/badplayer"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pub := r.publisher(t, "rtmp", key)
	stop := livePublisher(t, ctx, pub, loopTags(fixtureTags(t), 2), newPacer(1, 0))
	defer stop()
	pl := r.player(t, "rtmp", key)
	if _, err := pl.ReadMedia(ctx); err != nil {
		t.Fatalf("player: %v", err)
	}
	// Chunk stream 3, type 0 header: timestamp 0, length 0xFFFFFF, AMF0 command.
	if err := pl.WriteRaw([]byte{0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x14, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	r.waitMetrics(t, "the player counted under bad_input", func(m map[string]float64) bool {
		return m[`mtrelay_subscribers_disconnected_total{protocol="rtmp",reason="bad_input"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="rtmp",reason="client_closed"}`] == 0
	})
}
