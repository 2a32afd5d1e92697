// Command rtmpload is a load generator for live media relays: one publisher
// and many players on loopback, with a report of what the players got.
//
// The publisher reads an FLV file (default testdata/fixture.flv), publishes
// it over RTMP in real time and loops it, metadata and sequence headers
// once, timestamps shifted by the file's length on every pass. Before each
// frame it records the wall-clock send time under the frame's content key
// (FNV-1a of its length and first and last bytes, see key.go): relays
// rebase timestamps per player but forward payloads byte for byte, so a
// player recognises each frame it receives and computes the end-to-end
// latency on the same clock.
//
// N players connect over RTMP, RTMPT or HTTP-FLV (-proto), spread evenly
// over -ramp; after -settle all of them are measured for -duration (the
// hold window), then the report gives connected/failed players, per-player
// bytes and frames (min/median/max) against what was sent in the window,
// delivered Mbit/s against N × the stream's bitrate, latency p50/p99, join
// → first key frame p50/p90, the longest gap between two frames (p99 over
// players), and rtmpload's own CPU over the window (getrusage); with
// -server-pid, the server's CPU over the window and its RSS too. -json
// prints the same report as JSON.
//
// Usage:
//
//	rtmpload -rtmp-addr 127.0.0.1:1935 -players 500 -ramp 5s -duration 20s
//	rtmpload -proto rtmpt -http-addr 127.0.0.1:8080 -players 100
//	rtmpload -proto httpflv -http-addr 127.0.0.1:8080 -players 100 -json
//
// Targets must be loopback addresses unless -allow-remote is given. Every
// loop is bounded: players by -players (at most 20000), every wait by
// -connect-timeout or the end of the window, the whole run by a deadline.
// cmd/rtmpload/compare.sh runs the same load against mtrelay and nginx-rtmp.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// maxPlayers bounds -players.
const maxPlayers = 20000

// config is the command line.
type config struct {
	rtmpAddr       string
	httpAddr       string
	proto          string
	app, stream    string
	file           string
	players        int
	ramp           time.Duration
	settle         time.Duration
	duration       time.Duration
	connectTimeout time.Duration
	label          string
	serverPID      int
	jsonOut        bool
	allowRemote    bool
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rtmpload: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rtmpload: %v\n", err)
		return 1
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.writeText(stdout)
	}
	return 0
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("rtmpload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.rtmpAddr, "rtmp-addr", "127.0.0.1:1935", "RTMP address: the publisher, and the players with -proto rtmp")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP address for -proto rtmpt and httpflv players")
	fs.StringVar(&c.proto, "proto", "rtmp", "players' protocol: rtmp|rtmpt|httpflv")
	fs.StringVar(&c.app, "app", "live", "RTMP application")
	fs.StringVar(&c.stream, "stream", "load", "stream name")
	fs.StringVar(&c.file, "file", "testdata/fixture.flv", "FLV file the publisher loops")
	fs.IntVar(&c.players, "players", 100, "number of players")
	fs.DurationVar(&c.ramp, "ramp", 5*time.Second, "players start evenly spread over this time")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "wait after the ramp before the hold window")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "hold window: how long every player is measured")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "a player that is not playing after this long failed")
	fs.StringVar(&c.label, "label", "", "name of the server under test, copied into the report")
	fs.IntVar(&c.serverPID, "server-pid", 0, "also report this process's CPU (/proc/PID/stat) over the window and its RSS (/proc/PID/status)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch c.proto {
	case "rtmp", "rtmpt", "httpflv":
	default:
		return c, fmt.Errorf("-proto %q: want rtmp|rtmpt|httpflv", c.proto)
	}
	if c.players < 1 || c.players > maxPlayers {
		return c, fmt.Errorf("-players %d: want 1..%d", c.players, maxPlayers)
	}
	if c.duration <= 0 || c.ramp < 0 || c.settle < 0 || c.connectTimeout <= 0 {
		return c, errors.New("-duration and -connect-timeout must be positive, -ramp and -settle not negative")
	}
	if c.duration > time.Hour || c.ramp > time.Hour || c.settle > time.Hour {
		return c, errors.New("-duration, -ramp and -settle are limited to 1h")
	}
	addrs := []string{c.rtmpAddr}
	if c.proto != "rtmp" {
		addrs = append(addrs, c.httpAddr)
	}
	for _, a := range addrs {
		if err := checkLoopback(a, c.allowRemote); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkLoopback refuses addr unless every address it resolves to is a
// loopback one, or allow is set.
func checkLoopback(addr string, allow bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if allow {
		return nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), host)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("address %q is not loopback (%s); pass -allow-remote to load a remote server", addr, ip.IP)
		}
	}
	return nil
}
