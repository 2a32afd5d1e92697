package rtmptest

import "github.com/mtrelay/mtrelay/rtmp/amf"

// ErrBadAMF is returned by DecodeAMF0 for a payload that is not a sequence of AMF0
// values.
var ErrBadAMF = amf.ErrMalformed

// ECMAArray is an AMF0 ECMA Array, the type of onMetaData's argument.
type ECMAArray = amf.ECMAArray

// EncodeAMF0 encodes values one after the other in AMF0 (see amf.Encode).
func EncodeAMF0(values ...any) ([]byte, error) { return amf.Encode(values...) }

// DecodeAMF0 decodes every AMF0 value in p (see amf.Decode).
func DecodeAMF0(p []byte) ([]any, error) { return amf.Decode(p) }
