package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel"
	"github.com/mtrelay/mtrelay/httptunnel/hls"
	"github.com/mtrelay/mtrelay/httptunnel/httpflv"
	"github.com/mtrelay/mtrelay/httptunnel/player"
	"github.com/mtrelay/mtrelay/httptunnel/record"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
	"github.com/mtrelay/mtrelay/session"
)

// Protocols that always have a series (at zero when idle), so dashboards and alerts
// see them before the first client. Others the hub reports are added as they appear.
var (
	publisherProtocols  = []string{"rtmp", "rtmps", httptunnel.ProtocolRTMPT, httptunnel.ProtocolRTMPTS}
	subscriberProtocols = []string{"rtmp", "rtmps", httptunnel.ProtocolRTMPT, httptunnel.ProtocolRTMPTS,
		httpflv.Protocol, hls.Protocol, player.Protocol}
)

// metricsSource is what the collector reads on every scrape.
type metricsSource struct {
	hub     *relay.Hub
	rtmp    *rtmp.Server
	tunnels *httptunnel.Server
	sess    *session.Store   // nil: no session series
	access  *allowControl    // the access chain's counters (allow.go); nil: no decision series
	rec     *record.Recorder // nil: no recording series
}

// metricsCollector is a prometheus.Collector that reads the relay's own counters
// (relay.Hub.Streams, Stats and SubscriberEnds, rtmp.Server.Stats and Conns,
// httptunnel.Server.Tunnels, session.Store.Stats, record.Recorder.Stats, the access
// chain's decisions)
// when Prometheus scrapes, so the media path pays nothing for metrics. Per-stream
// series exist only with --metrics-per-stream, for the maxStreams streams with the
// most subscribers, so the number of series stays bounded whatever clients publish.
type metricsCollector struct {
	src        metricsSource
	perStream  bool
	maxStreams int

	streams, publishers, subscribers                          *prometheus.Desc
	bytesIn, bytesOut, dropped, evicted                       *prometheus.Desc
	tunnels, conns, parked, accepted, disconnects, handshakes *prometheus.Desc
	streamSubs, streamLive, streamIn, streamOut               *prometheus.Desc
	streamDropped, streamEvicted, streamsOmitted              *prometheus.Desc
	streamBitrateIn, streamBitrateOut, streamPublished        *prometheus.Desc
	subsEnded, access                                         *prometheus.Desc
	sessions, logins, dbErrors                                *prometheus.Desc
	recActive, recBytes, recStarted, recFailed                *prometheus.Desc
}

var _ prometheus.Collector = (*metricsCollector)(nil)

func newMetricsCollector(src metricsSource, perStream bool, maxStreams int) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mtrelay_"+name, help, labels, nil)
	}
	return &metricsCollector{
		src: src, perStream: perStream, maxStreams: maxStreams,

		streams:     d("streams", "Streams with a publisher or subscribers."),
		publishers:  d("publishers", "Live publishers, by protocol.", "protocol"),
		subscribers: d("subscribers", "Subscribers (players and viewers), by protocol; hls counts distinct clients of the last 10 s.", "protocol"),
		bytesIn:     d("bytes_in_total", "Media payload bytes received from publishers."),
		bytesOut:    d("bytes_out_total", "Media payload bytes handed to subscribers."),
		dropped:     d("dropped_packets_total", "Packets dropped on subscriber queue overflow."),
		evicted:     d("subscribers_evicted_total", "Subscribers cut off by the hub, by reason (slow, no_publisher).", "reason"),
		tunnels:     d("rtmpt_tunnels", "Open RTMPT and RTMPTS tunnels."),
		conns:       d("rtmp_connections", "RTMP connections being served (TCP, TLS and tunnelled)."),
		parked:      d("rtmp_connections_parked", "RTMP players waiting for input with no goroutine of their own (parked on the poller)."),
		accepted:    d("rtmp_connections_accepted_total", "RTMP connections accepted (TCP, TLS and tunnelled)."),
		disconnects: d("rtmp_disconnects_total", "RTMP connections that completed the handshake and ended, by reason.", "reason"),
		handshakes:  d("rtmp_handshake_failures_total", "RTMP connections that never completed the handshake, by reason.", "reason"),
		subsEnded: d("subscribers_disconnected_total", "Subscribers that ended, by protocol and reason: client_closed, timeout, slow, no_publisher, "+
			"kicked (their stream's publisher was kicked, or they were cut off), bad_input, shutdown; an HLS muxer counts its viewers.", "protocol", "reason"),
		access: d("access_decisions_total", "Access decisions (allow lists, stream keys, hooks) on connect, publish and play, by result: "+
			"allowed, refused (allow_list counts the refusals of --allow-publish/--allow-play among them), error (no decision: database or hook failed).", "action", "result"),
		sessions:   d("http_sessions", "Live HTTP sessions: logged in (each holds a database connection) or anonymous.", "kind"),
		logins:     d("logins_total", "Console logins, by result: ok, failed (bad credentials), limited (429), unavailable (503: database down or session cap).", "result"),
		dbErrors:   d("database_errors_total", "Failed database queries: the service pool's, and users' queries that failed for a connection or server error."),
		recActive:  d("recordings_active", "Recordings being written."),
		recBytes:   d("recording_bytes_total", "Bytes written to recording files."),
		recStarted: d("recordings_started_total", "Recordings started (file created or reopened for append)."),
		recFailed:  d("recordings_failed_total", "Recordings stopped by an error: disk full, write error, queue full."),

		streamLive:       d("stream_live", "1 while the stream has a publisher (--metrics-per-stream).", "stream"),
		streamPublished:  d("stream_publisher_uptime_seconds", "How long the current publisher has been live (--metrics-per-stream).", "stream"),
		streamSubs:       d("stream_subscribers", "Subscribers of one stream, by protocol (--metrics-per-stream).", "stream", "protocol"),
		streamIn:         d("stream_bytes_in_total", "Payload bytes received for one stream; restarts when the stream entry is recreated (--metrics-per-stream).", "stream"),
		streamOut:        d("stream_bytes_out_total", "Payload bytes handed to one stream's subscribers (--metrics-per-stream).", "stream"),
		streamBitrateIn:  d("stream_bitrate_in_bps", "Publisher bitrate over the last ~5 s (--metrics-per-stream).", "stream"),
		streamBitrateOut: d("stream_bitrate_out_bps", "All subscribers' bitrate over the last ~5 s (--metrics-per-stream).", "stream"),
		streamDropped:    d("stream_dropped_packets_total", "Packets dropped on one stream's queues (--metrics-per-stream).", "stream"),
		streamEvicted:    d("stream_subscribers_evicted_total", "Subscribers evicted from one stream (--metrics-per-stream).", "stream"),
		streamsOmitted:   d("streams_omitted", "Streams left out of the per-stream series by --metrics-max-streams."),
	}
}

// Describe sends every descriptor the collector may use.
func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.streams, m.publishers, m.subscribers, m.bytesIn, m.bytesOut,
		m.dropped, m.evicted, m.tunnels, m.conns, m.accepted, m.disconnects, m.handshakes, m.subsEnded} {
		ch <- d
	}
	if m.src.access != nil {
		ch <- m.access
	}
	if m.src.sess != nil {
		ch <- m.sessions
		ch <- m.logins
		ch <- m.dbErrors
	}
	if m.src.rec != nil {
		ch <- m.recActive
		ch <- m.recBytes
		ch <- m.recStarted
		ch <- m.recFailed
	}
	if m.perStream {
		for _, d := range []*prometheus.Desc{m.streamLive, m.streamPublished, m.streamSubs, m.streamIn,
			m.streamOut, m.streamBitrateIn, m.streamBitrateOut, m.streamDropped, m.streamEvicted, m.streamsOmitted} {
			ch <- d
		}
	}
}

// Collect reads the relay's counters and sends one sample per series.
func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	streams := m.src.hub.Streams()
	pubs := zeroCounts(publisherProtocols)
	subs := zeroCounts(subscriberProtocols)
	for _, s := range streams {
		if s.Publisher != nil {
			pubs[s.Publisher.Protocol]++
		}
		for proto, n := range s.Subscribers {
			subs[proto] += n
		}
	}
	gauge(m.streams, float64(len(streams)))
	for proto, n := range pubs {
		gauge(m.publishers, float64(n), proto)
	}
	for proto, n := range subs {
		gauge(m.subscribers, float64(n), proto)
	}

	hs := m.src.hub.Stats()
	counter(m.bytesIn, float64(hs.BytesIn))
	counter(m.bytesOut, float64(hs.BytesOut))
	counter(m.dropped, float64(hs.Dropped))
	counter(m.evicted, float64(hs.EvictedSlow), "slow")
	counter(m.evicted, float64(hs.EvictedNoPublisher), "no_publisher")

	gauge(m.tunnels, float64(m.src.tunnels.Tunnels()))
	gauge(m.conns, float64(m.src.rtmp.Conns()))
	gauge(m.parked, float64(m.src.rtmp.Parked()))
	rs := m.src.rtmp.Stats()
	counter(m.accepted, float64(rs.Accepted))
	for reason, n := range rs.Closes {
		counter(m.disconnects, float64(n), reason)
	}
	for reason, n := range rs.HandshakeFailures {
		counter(m.handshakes, float64(n), reason)
	}

	// Every standard protocol and reason has a series, at zero until it happens.
	ends := m.src.hub.SubscriberEnds()
	for _, proto := range subscriberProtocols {
		if ends[proto] == nil {
			ends[proto] = map[string]int64{}
		}
	}
	for proto, byReason := range ends {
		for _, reason := range relay.EndReasons {
			counter(m.subsEnded, float64(byReason[reason]), proto, reason)
		}
	}
	if m.src.access != nil {
		for action, byResult := range m.src.access.decisions() {
			for result, n := range byResult {
				counter(m.access, float64(n), action, result)
			}
		}
	}
	if m.src.sess != nil {
		ss := m.src.sess.Stats()
		gauge(m.sessions, float64(ss.Sessions), "login")
		gauge(m.sessions, float64(ss.Anonymous), "anonymous")
		counter(m.logins, float64(ss.LoginsOK), "ok")
		counter(m.logins, float64(ss.LoginsFailed), "failed")
		counter(m.logins, float64(ss.LoginsLimited), "limited")
		counter(m.logins, float64(ss.LoginsUnavailable), "unavailable")
		counter(m.dbErrors, float64(ss.DatabaseErrors))
	}
	if m.src.rec != nil {
		rs := m.src.rec.Stats()
		gauge(m.recActive, float64(rs.Active))
		counter(m.recBytes, float64(rs.BytesWritten))
		counter(m.recStarted, float64(rs.Started))
		counter(m.recFailed, float64(rs.Failed))
	}

	if m.perStream {
		m.collectStreams(streams, gauge, counter)
	}
}

// collectStreams sends the per-stream series of the maxStreams streams with the most
// subscribers (ties by key, so the choice is stable between scrapes).
func (m *metricsCollector) collectStreams(streams []relay.StreamStats, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	total := func(s relay.StreamStats) int {
		n := 0
		for _, v := range s.Subscribers {
			n += v
		}
		return n
	}
	slices.SortStableFunc(streams, func(a, b relay.StreamStats) int {
		return cmp.Or(cmp.Compare(total(b), total(a)), cmp.Compare(a.Key, b.Key))
	})
	omitted := max(len(streams)-m.maxStreams, 0)
	gauge(m.streamsOmitted, float64(omitted))
	for _, s := range streams[:len(streams)-omitted] {
		live := 0.0
		if s.Live {
			live = 1
		}
		gauge(m.streamLive, live, s.Key)
		gauge(m.streamPublished, s.UptimeSec, s.Key)
		for proto, n := range s.Subscribers {
			gauge(m.streamSubs, float64(n), s.Key, proto)
		}
		counter(m.streamIn, float64(s.BytesIn), s.Key)
		counter(m.streamOut, float64(s.BytesOut), s.Key)
		gauge(m.streamBitrateIn, float64(s.BitrateIn), s.Key)
		gauge(m.streamBitrateOut, float64(s.BitrateOut), s.Key)
		counter(m.streamDropped, float64(s.Dropped), s.Key)
		counter(m.streamEvicted, float64(s.Evicted), s.Key)
	}
}

func zeroCounts(keys []string) map[string]int {
	m := make(map[string]int, len(keys))
	for _, k := range keys {
		m[k] = 0
	}
	return m
}

// metricsHandler serves the relay's collector plus the Go runtime and process
// collectors from a registry of its own (no global registry: tests run many relays
// in one process).
func metricsHandler(src metricsSource, cfg Config, log zerolog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newMetricsCollector(src, cfg.MetricsPerStream, cfg.MetricsMaxStreams),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// promLogger passes promhttp's error messages to zerolog.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn().Msg(fmt.Sprint(v...)) }

// metricsServer serves /metrics on --metrics-addr, apart from the public HTTP port.
type metricsServer struct {
	hs *http.Server   // immutable after mountMetrics
	wg sync.WaitGroup // the Serve goroutine
}

// mountMetrics serves GET /metrics on mux, or, with --metrics-addr, on a listener of
// its own that stop closes (nil when there is none).
func mountMetrics(ctx context.Context, cfg Config, log zerolog.Logger, mux *http.ServeMux, src metricsSource) (*metricsServer, error) {
	log = log.With().Str("component", "metrics").Logger()
	h := metricsHandler(src, cfg, log)
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", h)
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", cfg.MetricsAddr, err)
	}
	own := http.NewServeMux()
	own.Handle("GET /metrics", h)
	m := &metricsServer{hs: &http.Server{
		Handler:           own,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}}
	log.Info().Str("metrics", ln.Addr().String()).Msg("metrics listening")
	m.wg.Go(func() {
		if err := m.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn().Err(err).Msg("metrics server failed")
		}
	})
	return m, nil
}

// stop closes the metrics listener and waits for its server. A nil m is a no-op.
func (m *metricsServer) stop() {
	if m == nil {
		return
	}
	m.hs.Close()
	m.wg.Wait()
}
