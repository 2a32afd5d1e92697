package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// debugServer serves net/http/pprof on its own listener (--debug-addr), so
// profiles never share a port with the public HTTP handlers. Off unless the
// flag is set.
type debugServer struct {
	hs *http.Server   // immutable after startDebug
	wg sync.WaitGroup // the Serve goroutine
}

// startDebug listens on addr and serves /debug/pprof/ until stop. It
// returns nil, nil when addr is empty.
func startDebug(ctx context.Context, addr string, log zerolog.Logger) (*debugServer, error) {
	if addr == "" {
		return nil, nil
	}
	if runtime.MemProfileRate == 0 {
		// main turns heap profiling off (tuneMemory); /debug/pprof/heap needs it.
		runtime.MemProfileRate = 512 << 10
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{hs: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}}
	log.Info().Str("debug", ln.Addr().String()).Msg("pprof listening")
	d.wg.Go(func() {
		if err := d.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn().Err(err).Msg("debug server failed")
		}
	})
	return d, nil
}

// stop closes the debug server (a running profile is cut short) and waits
// for it. A nil d is a no-op.
func (d *debugServer) stop() {
	if d == nil {
		return
	}
	d.hs.Close()
	d.wg.Wait()
}
