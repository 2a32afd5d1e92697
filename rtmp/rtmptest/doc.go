// Package rtmptest provides a minimal, real RTMP client for tests, and FLV
// file helpers to feed it.
//
// [Client] speaks RTMP 1.0 over any net.Conn: the simple handshake (§5.2,
// go-rtmp's handshake package with SkipHandshakeVerification), the chunk
// stream of package [github.com/mtrelay/mtrelay/rtmp/chunk] (§5.3), and the
// AMF0 commands connect, releaseStream, FCPublish, createStream, publish,
// play, FCUnpublish and deleteStream (§7.2) encoded with go-amf0. It is meant
// to drive mtrelay's RTMP server in tests the way ffmpeg and OBS do, with
// every step observable and every wait bounded by a deadline.
//
// [ReadFLV] and [ParseFLV] split an FLV file (FLV 10.1, Annex E) into tags
// that [Client.WriteMedia] can publish; [AppendFLV] writes them back.
//
// The package may import rtmp/chunk, go-rtmp's handshake package, go-amf0
// and the standard library. It must not import rtmp or relay (so their tests
// can import it), and no go-rtmp or go-amf0 type appears in its API.
package rtmptest
