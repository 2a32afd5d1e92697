package main

import (
	"github.com/mtrelay/mtrelay/cmd/rtmpload/procstat"

	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// drain is how long players keep reading after the window, so frames sent
// at its end are counted.
const drain = time.Second

// run carries out one load run and returns its report. Progress goes to
// logw.
func run(ctx context.Context, cfg config, logw io.Writer) (*Report, error) {
	in, err := loadInput(cfg.file)
	if err != nil {
		return nil, err
	}
	// The whole run is bounded: publisher start, ramp, settle, window,
	// drain, plus the connect timeout and slack.
	total := 10*time.Second + cfg.ramp + cfg.settle + cfg.duration + drain + cfg.connectTimeout + 10*time.Second
	ctx, cancel := context.WithTimeoutCause(ctx, total, errors.New("rtmpload: run took too long"))
	defer cancel()

	base := time.Now()
	tab := newSendTable(in.keys, base)
	var plan atomic.Pointer[window]
	ready := make(chan struct{})
	var pub pubResult
	var pubWG sync.WaitGroup
	pubCtx, pubCancel := context.WithCancel(ctx)
	defer pubCancel()
	pubDone := make(chan struct{})
	pubWG.Go(func() {
		defer close(pubDone)
		pub = publish(pubCtx, cfg.rtmpAddr, cfg.app, cfg.stream, in, tab, &plan, ready)
	})
	readyTimer := time.NewTimer(10 * time.Second)
	select {
	case <-ready:
		readyTimer.Stop()
	case <-pubDone:
		if pub.err != nil {
			return nil, pub.err
		}
		return nil, errors.New("publisher: ended before its first key frame")
	case <-readyTimer.C:
		pubCancel()
		pubWG.Wait()
		return nil, errors.New("publisher: no key frame sent within 10s")
	}
	fmt.Fprintf(logw, "rtmpload: publishing %s (%.2f Mbit/s, %v loop) to %s; %d %s players over %v\n",
		cfg.file, in.bitrate/1e6, in.loop, cfg.rtmpAddr, cfg.players, cfg.proto, cfg.ramp)

	rampStart := tab.now()
	w := window{start: rampStart + int64(cfg.ramp+cfg.settle)}
	w.end = w.start + int64(cfg.duration)
	w.stop = w.end + int64(drain)
	plan.Store(&w)

	pc := playerConfig{
		proto: cfg.proto, rtmpAddr: cfg.rtmpAddr, httpAddr: cfg.httpAddr,
		app: cfg.app, stream: cfg.stream, connectTimeout: cfg.connectTimeout,
	}
	if cfg.proto == "rtmpt" {
		pc.rtmpt = newRTMPTClient(cfg.httpAddr, cfg.players)
		defer pc.rtmpt.closeIdle()
	}

	// CPU of this process over the window.
	var cpu cpuSample
	var cpuWG sync.WaitGroup
	cpuWG.Go(func() { cpu = sampleCPU(ctx, tab, w, cfg.serverPID) })

	results := make([]playerResult, cfg.players)
	var wg sync.WaitGroup
	for i := range cfg.players {
		at := base.Add(time.Duration(rampStart))
		if cfg.players > 1 {
			at = at.Add(cfg.ramp * time.Duration(i) / time.Duration(cfg.players-1))
		}
		if !sleepUntil(ctx, at) {
			break
		}
		wg.Go(func() { results[i] = runPlayer(ctx, pc, tab, w) })
	}
	wg.Wait()
	pubCancel()
	pubWG.Wait()
	cpuWG.Wait()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if pub.err != nil {
		return nil, pub.err
	}
	return newReport(cfg, in, pub, results, cpu), nil
}

// sleepUntil waits until t or ctx's end; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// cpuSample is this process's CPU time over the hold window, and the
// server's when its pid is known.
type cpuSample struct {
	user, sys time.Duration
	wall      time.Duration
	maxRSSKB  int64

	server                 time.Duration // server CPU time in the window
	serverRSS, serverHWM   int64         // KiB at the end of the window
	serverAnon, serverFile int64         // KiB at the end of the window: RssAnon, RssFile
	serverCtxSw            int64         // server context switches in the window
	serverErr              error

	coreBusyPct []float64 // per core, busy time / elapsed over the window (all processes)
}

// sampleCPU reads getrusage(RUSAGE_SELF), and /proc for serverPID if not
// 0, at the start and end of w.
func sampleCPU(ctx context.Context, tab *sendTable, w window, serverPID int) cpuSample {
	var s cpuSample
	var a, b syscall.Rusage
	if !sleepUntil(ctx, tab.base.Add(time.Duration(w.start))) {
		return s
	}
	t0 := time.Now()
	busy0, total0, coreErr := procstat.CoreTimes()
	var srv0 time.Duration
	var sw0 int64
	if serverPID != 0 {
		srv0, s.serverErr = procstat.CPU(serverPID)
		sw0, _ = procstat.CtxSwitches(serverPID)
	}
	if syscall.Getrusage(syscall.RUSAGE_SELF, &a) != nil {
		return s
	}
	if !sleepUntil(ctx, tab.base.Add(time.Duration(w.end))) {
		return s
	}
	if syscall.Getrusage(syscall.RUSAGE_SELF, &b) != nil {
		return s
	}
	if serverPID != 0 && s.serverErr == nil {
		var srv1 time.Duration
		if srv1, s.serverErr = procstat.CPU(serverPID); s.serverErr == nil {
			s.server = srv1 - srv0
			s.serverRSS, s.serverHWM, s.serverErr = procstat.Mem(serverPID)
			s.serverAnon, s.serverFile, _ = procstat.MemParts(serverPID)
			if sw1, err := procstat.CtxSwitches(serverPID); err == nil && sw0 > 0 {
				s.serverCtxSw = sw1 - sw0
			}
		}
	}
	s.wall = time.Since(t0)
	if busy1, total1, err := procstat.CoreTimes(); err == nil && coreErr == nil && len(busy1) == len(busy0) {
		for i := range busy1 {
			if dt := total1[i] - total0[i]; dt > 0 {
				s.coreBusyPct = append(s.coreBusyPct, 100*float64(busy1[i]-busy0[i])/float64(dt))
			}
		}
	}
	s.user = time.Duration(b.Utime.Nano() - a.Utime.Nano())
	s.sys = time.Duration(b.Stime.Nano() - a.Stime.Nano())
	s.maxRSSKB = b.Maxrss
	return s
}
