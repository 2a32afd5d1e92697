package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzReader feeds arbitrary bytes to the Reader. It must never panic; every
// message it decodes, re-encoded with AppendMessage (switching chunk size
// after each accepted Set Chunk Size, as a peer would), must decode again to
// the same messages; and reading byte by byte must give the same result.
func FuzzReader(f *testing.F) {
	for _, tc := range cases {
		f.Add(tc.wire)
	}
	cfg := ReaderConfig{MaxMessageSize: 1 << 20, MaxChunkStreams: 16}
	f.Fuzz(func(t *testing.T, wire []byte) {
		got, err := readAll(bytes.NewReader(wire), cfg)
		if err == nil {
			t.Fatal("readAll ended without an error")
		}
		got2, err2 := readAll(iotest.OneByteReader(bytes.NewReader(wire)), cfg)
		if len(got2) != len(got) || errors.Is(err, io.EOF) != errors.Is(err2, io.EOF) {
			t.Fatalf("one byte reads: %d messages, %v; whole: %d messages, %v", len(got2), err2, len(got), err)
		}
		checkMessages(t, got2, got)

		var re []byte
		size := uint32(DefaultChunkSize)
		for _, m := range got {
			re = AppendMessage(re, size, m.CSID, m.TypeID, m.StreamID, m.Timestamp, m.Payload)
			if m.TypeID == TypeSetChunkSize {
				size = binary.BigEndian.Uint32(m.Payload)
			}
		}
		again, err := readAll(bytes.NewReader(re), cfg)
		if err != io.EOF {
			t.Fatalf("re-encoded stream: %v", err)
		}
		checkMessages(t, again, got)
	})
}
