// Package httpflv serves live streams as HTTP-FLV: GET /{app}/{stream}.flv answers with
// an endless chunked FLV stream (FLV 10.1) of the hub's stream key "app/stream", played
// by ffplay, ffmpeg, VLC and flv.js/mpegts.js pages.
//
// Each viewer is one relay subscriber (protocol "http-flv") and gets the FLV header,
// onMetaData, the sequence headers, the cached GOP from its last keyframe, then live
// tags; its timestamps are rebased by the hub, so only the 11-byte tag headers are per
// viewer. The tag bodies are the hub's packet payloads, shared by every viewer and
// never copied: the handler takes over the TCP connection (http.Hijacker) and writes
// each batch of tags as one HTTP chunk with one writev (net.Buffers).
//
// Streams whose known codecs are not H.264 and AAC get 415 (flv.CheckCodecs). A
// viewer that joined before the codecs were known got 200; when the first video or
// audio packet of a publisher shows another codec, its chunked body is ended cleanly
// and the reason logged.
//
// A viewer ends when the client disconnects (its reader sees EOF), when a write does
// not finish within Config.WriteTimeout (a stalled client), when the hub evicts it as a
// slow subscriber, when the stream has had no publisher for the hub's PlayWait, or
// when the Handler closes.
//
// httpflv may import relay, relay/netio, httptunnel/flv, the standard library and zerolog; never
// rtmp. Goroutines: on plain TCP (Linux) a viewer that waits has none. ServeHTTP
// returns once the viewer is set up; the publisher's goroutine writes through
// (relay.SubscribeOptions.WriteThrough), an output goroutine runs only while there is
// work it cannot do (output.kick, from relay.SubscribeOptions.OnWake), and the reader
// is parked on a relay/netio.Poller between reads (Handler.watch). Elsewhere (TLS,
// other systems) a viewer runs in its net/http handler goroutine plus one reader
// goroutine. Close ends every viewer and waits for all of these.
package httpflv
