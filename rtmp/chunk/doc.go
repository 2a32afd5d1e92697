// Package chunk implements the RTMP chunk stream layer (RTMP 1.0 §5.3): it
// reassembles messages from chunks ([Reader]) and splits messages into chunks
// ([AppendMessage]).
//
// mtrelay owns this layer instead of relying on go-rtmp v0.0.7, whose chunk
// reader ignores the extended timestamp on type 3 chunks (streams past
// 0xFFFFFF ms desync), panics on malformed input and flushes after every
// chunk. See /work/shared/reference/peers-and-go-rtmp.md.
//
// Wire format handled here (RTMP 1.0 §5.3.1):
//
//   - basic header (§5.3.1.1): fmt in the top 2 bits and a chunk stream id
//     (csid) in the low 6 bits; csid 0 means one more byte (csid 64..319),
//     csid 1 means two more bytes, little-endian (csid 64..65599);
//   - message header (§5.3.1.2): 11, 7, 3 or 0 bytes for fmt 0, 1, 2, 3;
//   - extended timestamp (§5.3.1.3): 4 bytes after the message header when
//     its 24-bit timestamp field is 0xFFFFFF. A type 3 chunk carries it
//     whenever the last type 0/1/2 header on its chunk stream did, which is
//     what ffmpeg, librtmp and OBS send and expect.
//
// Timestamp deltas of type 1 and 2 headers accumulate per chunk stream. A
// type 3 chunk that starts a new message reuses the last delta; after a type 0
// header that delta is the type 0 timestamp itself, as in ffmpeg's
// rtmppkt.c. The protocol control messages Set Chunk Size and Abort
// (RTMP 1.0 §5.4.1, §5.4.2) are applied by the Reader itself.
//
// Every length a peer sends is capped by [ReaderConfig], and malformed input
// yields an error, never a panic.
//
// The package imports only the standard library; it must not import relay,
// rtmp, go-rtmp or any logger.
package chunk
