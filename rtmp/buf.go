package rtmp

import "bytes"

// amfBuf is a pooled scratch buffer for encoding AMF0 replies.
type amfBuf struct{ bytes.Buffer }
