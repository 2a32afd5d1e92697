// Package player serves the browser side of mtrelay: the stream list at GET /, the
// player page at GET /play/{app}/{stream}, and the fragmented-MP4 live stream the page
// plays, GET /play/{app}/{stream}/live.mp4.
//
// The page (page/player.html, embedded with go:embed: nothing is fetched from another
// origin) plays the stream with Media Source Extensions, appending the streamed fMP4
// (ISO/IEC 14496-12 fragments built with github.com/bluenviron/mediacommon/v2 fmp4) as
// it arrives, and falls back to the HLS playlist of package hls where MSE is missing
// (Safari on iOS). It starts muted with an unmute control, shows live/offline state,
// reconnects when the publisher returns, and bounds its latency: above
// catchUpBuffer seconds of buffer it plays faster, above jumpBuffer it jumps to the live
// edge. It publishes window.mtrelayStats = {latency, buffer, stalls, state} and shows it.
//
// Each page viewer is one relay subscriber (protocol "page"); the fMP4 stream starts at
// the GOP cache's keyframe and ends when the publisher leaves, so the page reconnects
// and re-initialises its decoder for the next publisher's codec parameters. Streams
// that are not H.264/AAC get 415 (flv.CheckCodecs). A panic while muxing a viewer's
// fMP4 is recovered, logged with its stack and counted (Handler.Panics); it ends only
// that viewer, whose connection is aborted. An evicted (slow) viewer's blocked write
// is ended at once rather than at Config.WriteTimeout.
//
// player may import relay, httptunnel/flv, mediacommon, the standard library and
// zerolog; never rtmp. Goroutines: none of its own; each viewer runs in its net/http
// handler goroutine, and Close ends them and waits.
package player
