// Package rtmp is mtrelay's RTMP server: the handshake, the command flow OBS, ffmpeg
// and librtmp clients use (connect, createStream, publish, play, ...), and the
// translation between RTMP messages and relay.Packet in both directions.
//
// It serves TCP listeners (Serve) and any net.Conn handed to it (ServeConn): TLS
// connections for RTMPS and httptunnel's virtual connections for RTMPT go through the
// same code. Each connection has a reader (run) and a writer; after the handshake
// every write to the socket happens under the writer's lock. A player's writer drains
// its relay subscriber in batches and writes each batch with one syscall. On plain TCP
// an idle player is also written to by its publisher's goroutine
// (relay.SubscribeOptions.WriteThrough): one non-blocking writev under the same lock,
// anything the socket does not take at once left to the writer, so output stays
// serialised per player and a publisher never waits for a player.
//
// On plain TCP a player that waits costs no goroutine, as in an event loop. Its
// writer is lazy: its goroutine runs only while there is work write-through cannot do
// (a full socket, replies, the end of the play) and is started again by kick
// (relay.SubscribeOptions.OnWake). Its reader parks on the server's poller
// (relay/netio.Poller) once it plays and has nothing to read; what the player sends
// next, or its hang-up, resumes it on a new goroutine (conn.resume). Anything that
// closes a connection goes through conn.close, which takes a parked reader back from
// the poller so that it sees the close. TLS and RTMPT connections keep one reader and
// one writer goroutine each.
//
// It builds on go-rtmp's handshake layouts and go-amf0's encoder but owns the chunk
// layer (rtmp/chunk) and the AMF0 decoder (rtmp/amf): see the README for why.
//
// It may import relay, its own sub-packages, go-rtmp's handshake package, go-amf0 and
// zerolog; never httptunnel or session, and go-rtmp types never leave it.
package rtmp
