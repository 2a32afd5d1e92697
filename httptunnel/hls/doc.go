// Package hls serves live streams as low-latency HLS (RFC 8216 and its LL-HLS
// extensions: fMP4 segments and parts, blocking playlist reloads) muxed by
// github.com/bluenviron/gohlslib/v2: GET /{app}/{stream}/index.m3u8 and the playlists,
// init files, segments and parts it links to.
//
// It owns one muxer per stream key. The first request for a live stream starts it: a
// relay subscriber (protocol "hls") whose GOP cache start gives the muxer a keyframe at
// once, and a goroutine that turns the hub's FLV tag bodies (H.264 AVCC access units,
// raw AAC frames) into gohlslib writes. The muxer is freed when no request came for
// Config.IdleTimeout, when the publisher leaves, or when its codec configuration
// changes; memory per stream is bounded by gohlslib's segment count and
// Config.SegmentMaxSize. One muxer serves all HLS clients of a stream, so the hub
// counts it as the number of distinct clients (IP and User-Agent) that made a request
// within Config.ViewerWindow (relay.SubscribeOptions.Viewers).
//
// Streams whose codecs are not H.264 and AAC get 415 (flv.CheckCodecs). gohlslib's
// encode errors are logged through zerolog, rate-limited, never with the standard log
// package. A panic in a muxer's goroutine, or in gohlslib while it answers a request,
// is recovered, logged with its stack and counted (Server.Panics); it ends only that
// stream's muxer (ErrPanic), and the next request starts a new one.
//
// hls may import relay, httptunnel/flv, gohlslib, mediacommon, the standard library
// and zerolog; never rtmp. Goroutines: Server owns a janitor and one goroutine per
// muxer; Close stops and waits for all of them.
package hls
