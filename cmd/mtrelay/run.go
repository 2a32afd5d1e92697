package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
)

// listeners are the sockets the relay serves; the caller opens them, so tests pass
// 127.0.0.1:0 listeners. rtmps and https are nil without TLS. run closes them all.
type listeners struct {
	rtmp  net.Listener
	http  net.Listener
	rtmps net.Listener // plain TCP; run wraps it in TLS
	https net.Listener // plain TCP; run wraps it in TLS
}

func (ls listeners) close() {
	for _, l := range []net.Listener{ls.rtmp, ls.http, ls.rtmps, ls.https} {
		if l != nil {
			l.Close()
		}
	}
}

// run wires the hub, the RTMP server, the RTMPT tunnels and the HTTP server, serves until
// ctx is done, then shuts down: stop accepting, tell players their stream ended, close
// everything.
func run(ctx context.Context, cfg Config, log zerolog.Logger, ls listeners) error {
	return runReloadable(ctx, cfg, log, ls, reloadOpts{})
}

// runReloadable is run that also reloads the configuration on every signal from
// ro.hup and on POST /api/admin/reload (reload.go).
func runReloadable(ctx context.Context, cfg Config, log zerolog.Logger, ls listeners, ro reloadOpts) error {
	defer ls.close()
	hub, err := relay.New(relay.Config{
		QueuePackets:  cfg.QueuePackets,
		QueueBytes:    cfg.QueueBytes,
		QueueDuration: cfg.QueueDuration,
		SlowGrace:     cfg.SlowGrace,
		GOPFrames:     cfg.GOPFrames,
		GOPBytes:      cfg.GOPBytes,
		PlayWait:      cfg.PlayWait,
	}, log)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	sess, err := newSessions(cfg, log, hub)
	if err != nil {
		return err
	}
	defer closeSessions(sess, cfg, log)
	rec, err := newRecorder(cfg, log, hub, sess) // record.go
	if err != nil {
		return err
	}
	// Closed before the sessions: the recordings' ends are logged through them.
	defer closeRecorder(rec, cfg, log)
	chain, err := newAccessControl(cfg, log, sess) // hooks.go; chain.reload applies hook settings
	if err != nil {
		return err
	}
	defer chain.close()
	vodSrc, err := newVOD(cfg, log, chain) // vod.go
	if err != nil {
		return err
	}
	rs, err := rtmp.New(rtmp.Config{
		Access:           chain.ctl,
		AccessTimeout:    chain.timeout,
		ChunkSize:        uint32(cfg.ChunkSize),
		HandshakeTimeout: cfg.HandshakeTimeout,
		IdleTimeout:      cfg.IdleTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		WriteCoalesce:    cfg.WriteCoalesce,
		VOD:              rtmpVOD{vodSrc}, // vod.go
		MaxMessageSize:   uint32(cfg.MaxMessageSize),
		MaxConns:         cfg.MaxConns,
	}, log, hub)
	if err != nil {
		return fmt.Errorf("rtmp: %w", err)
	}
	tunnels, err := httptunnel.New(httptunnel.Config{
		MaxBodyBytes:    cfg.TunnelMaxBody,
		MaxTunnels:      cfg.TunnelMaxTunnels,
		MaxTunnelsPerIP: cfg.TunnelMaxTunnelsPerIP,
		IdleTimeout:     cfg.TunnelIdleTimeout,
		MaxPending:      cfg.TunnelMaxPending,
	}, log, rs)
	if err != nil {
		return fmt.Errorf("rtmpt: %w", err)
	}

	var tlsCfg *tls.Config
	var certs *certFiles
	if cfg.tlsEnabled() {
		if certs, err = newCertFiles(cfg.TLSCert, cfg.TLSKey); err != nil {
			return err
		}
		// HTTP/1.1 only: RTMPT clients need one keep-alive connection per tunnel.
		// GetCertificate: a reload replaces the certificate in place.
		tlsCfg = &tls.Config{GetCertificate: certs.getCertificate, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	access := newAccessLog(cfg.AccessLog, log, ro.level)
	reloads := newReloader(cfg, log, ro, reloadTargets{rtmp: rs, access: access, certs: certs, hub: hub, tunnels: tunnels, chain: chain, sess: sess, rec: rec})

	mux := http.NewServeMux()
	tunnels.Mount(mux)
	sess.Mount(mux)
	mountRecordings(mux, rec, log) // record.go: without a database (sess.Mount serves it from the database otherwise)
	media := mountMedia(mux, log, hub, ls.rtmp.Addr(), chain)
	mountVOD(mux, vodSrc, media) // vod.go
	metrics, err := mountMetrics(ctx, cfg, log, mux, metricsSource{hub: hub, rtmp: rs, tunnels: tunnels, sess: sess, access: chain.allow, rec: rec})
	if err != nil {
		return err
	}
	defer metrics.stop()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /api/streams", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Streams []relay.StreamStats `json:"streams"`
			Tunnels int                 `json:"rtmpt_tunnels"`
			Conns   int                 `json:"rtmp_connections"`
		}{hub.Streams(), tunnels.Tunnels(), rs.Conns()})
	})
	mux.Handle("POST /api/admin/reload", reloads.adminHandler(sess))
	httpCtx, cancelHTTP := context.WithCancel(context.Background())
	defer cancelHTTP()
	hs := &http.Server{
		Handler:           access.wrap(mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Requests live until the drain is over, not until the signal: RTMPT players
		// must still poll to collect their end-of-stream status.
		BaseContext: func(net.Listener) context.Context { return httpCtx },
	}

	ev := log.Info().Str("rtmp", ls.rtmp.Addr().String()).Str("http", ls.http.Addr().String())
	if tlsCfg != nil {
		ev = ev.Str("rtmps", ls.rtmps.Addr().String()).Str("https", ls.https.Addr().String())
	} else {
		ev = ev.Str("tls", "off: no --tls-cert/--tls-key, RTMPS and HTTPS/RTMPTS listeners are not started")
	}
	ev.Msg("mtrelay listening")

	debug, err := startDebug(ctx, cfg.DebugAddr, log)
	if err != nil {
		return err
	}
	defer debug.stop()

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	serveRTMP := func(ln net.Listener) {
		wg.Go(func() {
			if err := rs.Serve(ctx, ln); err != nil {
				errc <- fmt.Errorf("rtmp serve %s: %w", ln.Addr(), err)
			}
		})
	}
	serveHTTP := func(ln net.Listener) {
		wg.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http serve %s: %w", ln.Addr(), err)
			}
		})
	}
	serveRTMP(ls.rtmp)
	// RTMPT clients (ffmpeg) write each POST in two segments without TCP_NODELAY;
	// acknowledging at once saves ~40 ms per request (see httptunnel.QuickAckListener).
	serveHTTP(httptunnel.QuickAckListener(ls.http))
	if tlsCfg != nil {
		serveRTMP(tls.NewListener(ls.rtmps, tlsCfg))
		serveHTTP(tls.NewListener(httptunnel.QuickAckListener(ls.https), tlsCfg))
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	wg.Go(func() { reloads.watch(watchCtx, ro.hup) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case runErr = <-errc:
		log.Error().Err(runErr).Msg("listener failed, shutting down")
	}
	stopWatch()

	// Stop accepting RTMP; players hear that the stream ended; then close what is left.
	// The HTTP listener stays open through the drain: RTMPT players fetch their
	// end-of-stream status with their next /idle.
	sctx, cancel := context.WithTimeoutCause(context.Background(), cfg.ShutdownTimeout,
		errors.New("shutdown timeout"))
	defer cancel()
	for _, l := range []net.Listener{ls.rtmp, ls.rtmps} {
		if l != nil {
			l.Close()
		}
	}
	hub.Close()
	drainPlayers(rs, tunnels, min(2*time.Second, cfg.ShutdownTimeout/2))
	cancelHTTP() // long responses (HTTP-FLV, page streams, held /idle) end now
	ls.close()
	hs.SetKeepAlivesEnabled(false)
	if err := tunnels.Close(sctx); err != nil {
		log.Warn().Err(err).Msg("rtmpt tunnels did not close in time")
	}
	if err := rs.Close(sctx); err != nil {
		log.Warn().Err(err).Msg("rtmp connections did not close in time")
	}
	if err := media.close(sctx); err != nil {
		log.Warn().Err(err).Msg("browser playback viewers did not close in time")
	}
	closeRecorder(rec, cfg, log) // record.go: the hub is closed, so the recordings have all it delivered: finish the files
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	wg.Wait()
	log.Info().Msg("stopped")
	return runErr
}

// drainPlayers waits, at most max, until every RTMP player was told its stream ended
// and closed, and every RTMPT tunnel of such a player handed that last output to its
// client's next poll.
func drainPlayers(rs *rtmp.Server, tunnels *httptunnel.Server, max time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), max)
	defer cancel()
	for rs.Players() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	_ = tunnels.Drain(ctx)
}

// closeWithin calls closeFn with a context that ends after d (the shutdown timeout),
// and logs msg as a warning if it fails: the shutdown of one component that has a
// Close(ctx) of its own (sessions, recordings, hooks).
func closeWithin(d time.Duration, closeFn func(context.Context) error, log zerolog.Logger, msg string) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), d, errors.New("shutdown timeout"))
	defer cancel()
	if err := closeFn(ctx); err != nil {
		log.Warn().Err(err).Msg(msg)
	}
}
