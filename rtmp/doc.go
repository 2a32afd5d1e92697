// Package rtmp is mtrelay's RTMP server: the handshake, the command flow OBS, ffmpeg
// and librtmp clients use (connect, createStream, publish, play, ...), and the
// translation between RTMP messages and relay.Packet in both directions.
//
// It serves TCP listeners (Serve) and any net.Conn handed to it (ServeConn): TLS
// connections for RTMPS and httptunnel's virtual connections for RTMPT go through the
// same code. Each connection has one reader goroutine (run) and one writer goroutine;
// after the handshake every write to the socket happens under the writer's lock. A
// player's writer drains its relay subscriber in batches and writes each batch with
// one syscall. On plain TCP an idle player is also written to by its publisher's
// goroutine (relay.SubscribeOptions.WriteThrough): one non-blocking writev under the
// same lock, anything the socket does not take at once left to the writer goroutine,
// so output stays serialised per player and a publisher never waits for a player.
//
// It builds on go-rtmp's handshake layouts and go-amf0's encoder but owns the chunk
// layer (rtmp/chunk) and the AMF0 decoder (rtmp/amf): see the README for why.
//
// It may import relay, its own sub-packages, go-rtmp's handshake package, go-amf0 and
// zerolog; never httptunnel or session, and go-rtmp types never leave it.
package rtmp
