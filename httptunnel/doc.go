// Package httptunnel serves RTMPT, RTMP tunnelled over HTTP POSTs (Red5 RTMPT; the wire
// contract is in shared/reference/rtmpt.md), and exposes every tunnel as a virtual
// net.Conn handed to a ConnHandler, so the RTMP server runs the same code path for RTMP,
// RTMPS, RTMPT and RTMPTS connections.
//
// It owns:
//   - the HTTP side of RTMPT: POST /open/1, /send/<id>/<seq>, /idle/<id>/<seq>,
//     /close/<id>/<seq> and /fcs/ident2 (always 404), with the byte-exact replies
//     ffmpeg and librtmp need (HTTP/1.1 200, explicit Content-Length, never chunked,
//     never Connection: close, a polling byte before every send/idle reply);
//   - tunnel ids (128 bits from crypto/rand, lowercase hex), sequence numbers
//     (replays and reordering never corrupt the byte stream), limits (body size,
//     tunnels in total and per IP, bounded pending output) and the idle reaper;
//   - the virtual connection: Read returns the bytes of /send bodies in order, Write
//     queues bytes for the next replies, deadlines behave like a TCP conn's, and the
//     conn has a method Protocol() string that returns "rtmpt" or "rtmpts".
//
// It must not import the rtmp package (github.com/mtrelay/mtrelay/rtmp) or go-rtmp: it
// declares the ConnHandler interface it needs and cmd/mtrelay passes *rtmp.Server in.
// It may import relay, the standard library and zerolog. dep_test.go enforces this.
//
// Goroutines: Server owns one reaper goroutine and one goroutine per tunnel running
// ConnHandler.ServeConn; Server.Close closes every tunnel and waits for all of them.
// Locks never nest: Server.mu and a tunnel's mu are never held together.
package httptunnel
