// Command mtrelay is a single-process live media relay: RTMP and RTMPT in, RTMP, RTMPT
// and HTTP out, through one in-memory fan-out hub.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	tuneMemory(os.Getenv)
	os.Exit(realMain(os.Args[1:], os.Getenv, os.Stderr))
}

// gcPercent is the relay's GOGC unless the environment sets one. A relay allocates
// little in steady state (its publishers' packets, about 1 MB/s for a 3 Mbit/s
// stream), so collecting at 50% heap growth instead of 100% costs a few GC cycles a
// minute and keeps RSS a few MB lower at hundreds of players.
const gcPercent = 50

// tuneMemory sets the relay's memory defaults: GOGC (when the environment has none)
// and no heap profiling unless --debug-addr turns it on (startDebug): the profiler's
// bucket table alone is 1.4 MB.
func tuneMemory(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	runtime.MemProfileRate = 0
}

func realMain(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return migrateMain(args[1:], getenv, stderr)
		case "check-config":
			return checkConfigMain(args[1:], getenv, os.Stdout, stderr)
		case "version":
			return versionMain(os.Stdout)
		}
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mtrelay: %v\n", err)
		return 2
	}
	log, level := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads (reload.go): flags and env as at start, the config file again.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ro := reloadOpts{
		hup:   hup,
		load:  func() (Config, error) { return parseConfig(args, getenv, io.Discard) },
		level: level,
	}

	var lc net.ListenConfig
	rtmpLn, err := lc.Listen(ctx, "tcp", cfg.RTMPAddr)
	if err != nil {
		log.Error().Err(err).Msg("cannot listen for RTMP")
		return 1
	}
	httpLn, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		rtmpLn.Close()
		log.Error().Err(err).Msg("cannot listen for HTTP")
		return 1
	}
	ls := listeners{rtmp: rtmpLn, http: httpLn}
	if cfg.tlsEnabled() {
		if ls.rtmps, err = lc.Listen(ctx, "tcp", cfg.RTMPSAddr); err == nil {
			ls.https, err = lc.Listen(ctx, "tcp", cfg.HTTPSAddr)
		}
		if err != nil {
			ls.close()
			log.Error().Err(err).Msg("cannot listen for TLS")
			return 1
		}
	}
	if err := runReloadable(ctx, cfg, log, ls, ro); err != nil {
		log.Error().Err(err).Msg("relay failed")
		return 1
	}
	return 0
}

// newLogger makes the root logger: console output on a terminal, JSON otherwise,
// unless --log-format says which. Its level is the returned levelWriter's, which a
// reload changes.
func newLogger(cfg Config, w io.Writer) (zerolog.Logger, *levelWriter) {
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "console"
			}
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	lw := newLevelWriter(w, lvl)
	return zerolog.New(lw).Level(zerolog.DebugLevel).With().Timestamp().Logger(), lw
}
