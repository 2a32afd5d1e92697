package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
)

// listeners are the sockets the relay serves; the caller owns and opens them, so tests
// pass 127.0.0.1:0 listeners.
type listeners struct {
	rtmp net.Listener
	http net.Listener
}

// run wires the hub, the RTMP server and the HTTP server, serves until ctx is done,
// then shuts down: stop accepting, tell players their stream ended, close everything.
func run(ctx context.Context, cfg Config, log zerolog.Logger, ls listeners) error {
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
	rs, err := rtmp.New(rtmp.Config{
		ChunkSize:        uint32(cfg.ChunkSize),
		HandshakeTimeout: cfg.HandshakeTimeout,
		IdleTimeout:      cfg.IdleTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		MaxMessageSize:   uint32(cfg.MaxMessageSize),
		MaxConns:         cfg.MaxConns,
	}, log, hub)
	if err != nil {
		return fmt.Errorf("rtmp: %w", err)
	}

	mux := http.NewServeMux()
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
		}{hub.Streams()})
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}

	log.Info().Str("rtmp", ls.rtmp.Addr().String()).Str("http", ls.http.Addr().String()).Msg("mtrelay listening")
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := rs.Serve(ctx, ls.rtmp); err != nil {
			errc <- fmt.Errorf("rtmp serve: %w", err)
		}
	})
	wg.Go(func() {
		if err := hs.Serve(ls.http); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http serve: %w", err)
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case runErr = <-errc:
		log.Error().Err(runErr).Msg("listener failed, shutting down")
	}

	// Stop accepting; players hear that the stream ended; then close what is left.
	sctx, cancel := context.WithTimeoutCause(context.Background(), cfg.ShutdownTimeout,
		errors.New("shutdown timeout"))
	defer cancel()
	ls.rtmp.Close()
	hs.SetKeepAlivesEnabled(false)
	hub.Close()
	// Give writers a moment to flush the end-of-stream status to players.
	drain := time.NewTimer(min(200*time.Millisecond, cfg.ShutdownTimeout/4))
	<-drain.C
	if err := rs.Close(sctx); err != nil {
		log.Warn().Err(err).Msg("rtmp connections did not close in time")
	}
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	wg.Wait()
	log.Info().Msg("stopped")
	return runErr
}
