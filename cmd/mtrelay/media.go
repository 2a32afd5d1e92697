package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/hls"
	"github.com/mtrelay/mtrelay/httptunnel/httpflv"
	"github.com/mtrelay/mtrelay/httptunnel/player"
	"github.com/mtrelay/mtrelay/relay"
)

// media holds the browser-playback handlers: HTTP-FLV, LL-HLS and the player page with
// the stream list.
type media struct {
	flv    *httpflv.Handler
	hls    *hls.Server
	player *player.Handler
}

// mountMedia creates the browser-playback handlers and mounts them on mux under one
// catch-all "/" pattern: their wildcard routes (GET /{app}/{file}.flv,
// GET /{app}/{stream}/{file}, GET /play/{app}/{stream}, GET /{$}) live on an inner mux,
// because next to the RTMPT prefixes (/open/, /send/, ...) they would conflict in one
// ServeMux; the outer mux still sends every more specific path to its own handler.
// rtmpAddr is the RTMP listener's address, whose port the stream list shows. The
// handlers run with their default configuration, which New cannot reject; should
// one fail anyway, it is logged and left unmounted, and the relay runs without it.
// Every viewer is checked by the access chain (stream keys, --on-play; hooks.go).
func mountMedia(mux *http.ServeMux, log zerolog.Logger, hub *relay.Hub, rtmpAddr net.Addr, access *hookSet) *media {
	m := &media{}
	inner := http.NewServeMux()
	var err error
	if m.flv, err = httpflv.New(httpflv.Config{Access: access.ctl, AccessTimeout: access.timeout}, log, hub); err == nil {
		m.flv.Mount(inner)
	} else {
		log.Error().Err(err).Msg("http-flv disabled")
	}
	if m.hls, err = hls.New(hls.Config{Access: access.ctl, AccessTimeout: access.timeout}, log, hub); err == nil {
		m.hls.Mount(inner)
	} else {
		log.Error().Err(err).Msg("hls disabled")
	}
	pcfg := player.Config{Access: access.ctl, AccessTimeout: access.timeout}
	if _, port, err := net.SplitHostPort(rtmpAddr.String()); err == nil {
		pcfg.RTMPPort, _ = strconv.Atoi(port)
	}
	if m.player, err = player.New(pcfg, log, hub); err == nil {
		m.player.Mount(inner)
	} else {
		log.Error().Err(err).Msg("player disabled")
	}
	mux.Handle("/", inner)
	return m
}

// close ends every viewer and muxer, waiting for them until ctx is done.
func (m *media) close(ctx context.Context) error {
	var errs []error
	if m.flv != nil {
		errs = append(errs, m.flv.Close(ctx))
	}
	if m.hls != nil {
		errs = append(errs, m.hls.Close(ctx))
	}
	if m.player != nil {
		errs = append(errs, m.player.Close(ctx))
	}
	return errors.Join(errs...)
}
