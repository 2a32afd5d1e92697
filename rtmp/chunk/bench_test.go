package chunk

import (
	"bytes"
	"io"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{{"payload=1K", 1 << 10}, {"payload=64K", 64 << 10}}

// BenchmarkAppendMessage measures chunking one video message at chunk size
// 4096 into a reused buffer, the server's send path.
func BenchmarkAppendMessage(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			payload := pay(0, bs.size)
			dst := make([]byte, 0, EncodedLen(4096, 6, 0, bs.size))
			b.ReportAllocs()
			b.SetBytes(int64(bs.size))
			for b.Loop() {
				dst = AppendMessage(dst[:0], 4096, 6, 9, 1, 1000, payload)
			}
		})
	}
}

// BenchmarkReader measures reassembling video messages sent at chunk size
// 4096 (as OBS and ffmpeg do), from memory: the allocations reported are the
// Message and its payload.
func BenchmarkReader(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			wire := AppendMessage(nil, 4096, 6, 9, 1, 1000, pay(0, bs.size))
			r := NewReader(io.MultiReader(bytes.NewReader(enc(setChunkSize(4096))), &loopReader{b: wire}), ReaderConfig{})
			if _, err := r.ReadMessage(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(bs.size))
			for b.Loop() {
				if _, err := r.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
