// Package vod plays FLV files back: recordings (--record-dir) and a VOD directory
// (--vod-dir). It owns three things:
//
//   - strict resolution of a requested name ("live/foo-20261130-120000.flv") inside
//     the configured directories ([Source]): names with "..", ".", empty segments,
//     a leading "/", backslashes, NUL or control characters are refused, and every
//     open goes through an [os.Root], which also refuses symlinks that lead out of
//     the directory;
//   - an FLV file reader ([Reader], FLV 10.1 E.2-E.4) that indexes the keyframes by
//     scanning tag headers, replays onMetaData and the sequence headers first, seeks
//     to the keyframe at or before a time and yields relay.Packets;
//   - an HTTP handler for GET/HEAD /vod/{path...} with byte ranges (http.ServeContent).
//
// RTMP playback of the same files (rtmp.Config.VOD) and the player page
// (httptunnel/player) use [Source.OpenPlay] and [Source.Open]; cmd/mtrelay wires them.
//
// vod may import relay, httptunnel/flv, the standard library and zerolog; never rtmp.
// It starts no goroutines.
package vod
