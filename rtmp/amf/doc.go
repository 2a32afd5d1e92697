// Package amf decodes and encodes AMF0 (Adobe Action Message Format 0), the encoding
// of RTMP commands and data messages (RTMP 1.0 §7.1).
//
// Decoding is ours: it is bounded (nesting depth, array counts checked against the
// bytes left) and never panics on client input, which go-amf0 v0.1.0's decoder does
// not guarantee (unbounded recursion, strict arrays sized from the wire, and a bug that
// loses a nested object that follows another ECMA array property). Encoding uses
// github.com/yutopp/go-amf0, including its struct tags for ordered objects.
//
// It imports only the standard library and go-amf0.
package amf
