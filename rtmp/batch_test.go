package rtmp

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// TestBatchMatchesAppendMessage checks that a per-player header plus the shared chunked
// body are byte for byte what chunk.AppendMessage writes for the whole message.
func TestBatchMatchesAppendMessage(t *testing.T) {
	for _, cs := range []uint32{128, 4096} {
		for _, size := range []int{0, 1, 127, 128, 129, 4096, 4097, 20000} {
			for _, ts := range []uint32{0, 40, 0xFFFFFE, 0xFFFFFF, 0x1000000} {
				t.Run(fmt.Sprintf("cs=%d/size=%d/ts=%x", cs, size, ts), func(t *testing.T) {
					payload := bytes.Repeat([]byte{0xAB, 0xCD, 0xEF}, size/3+1)[:size]
					p := &relay.Packet{Kind: relay.KindVideo, Payload: payload}
					var b batch
					b.addMessage(p, cs, csidVideo, typeVideo, 1, ts)
					b.addMessage(p, cs, csidVideo, typeVideo, 1, ts) // second use: cached body
					got := b.appendTo(nil)
					one := chunk.AppendMessage(nil, cs, csidVideo, typeVideo, 1, ts, payload)
					want := append(append([]byte{}, one...), one...)
					if !bytes.Equal(got, want) {
						t.Fatalf("batch bytes differ from AppendMessage (%d vs %d bytes)", len(got), len(want))
					}
					var flat []byte
					for _, v := range b.buffers() {
						flat = append(flat, v...)
					}
					if !bytes.Equal(flat, want) || b.size != len(want) {
						t.Fatalf("buffers() differ: %d bytes, size %d, want %d", len(flat), b.size, len(want))
					}
				})
			}
		}
	}
}

// TestSharedBodyBuiltOnce checks that every player gets the same chunked bytes.
func TestSharedBodyBuiltOnce(t *testing.T) {
	p := &relay.Packet{Kind: relay.KindVideo, Payload: make([]byte, 10000)}
	a := sharedBody(p, 4096, csidVideo)
	b := sharedBody(p, 4096, csidVideo)
	if &a[0] != &b[0] {
		t.Fatal("shared body rebuilt for the second player")
	}
	small := &relay.Packet{Kind: relay.KindAudio, Payload: make([]byte, 300)}
	if s := sharedBody(small, 4096, csidAudio); &s[0] != &small.Payload[0] {
		t.Fatal("a one-chunk payload was copied")
	}
}

// TestBatchNoAllocs checks a player's steady-state batching allocates nothing per packet.
func TestBatchNoAllocs(t *testing.T) {
	p := &relay.Packet{Kind: relay.KindVideo, Payload: make([]byte, 10000)}
	sharedBody(p, 4096, csidVideo) // built once by the first player
	b := &batch{}
	allocs := testing.AllocsPerRun(100, func() {
		b.reset()
		for i := range 32 {
			b.addMessage(p, 4096, csidVideo, typeVideo, 1, uint32(i*40))
		}
		_ = b.buffers()
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
}

// BenchmarkBatch measures what one player's writer spends per media message: header,
// shared body lookup and iovec building (not the syscall).
func BenchmarkBatch(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("payload=%dK", size>>10), func(b *testing.B) {
			p := &relay.Packet{Kind: relay.KindVideo, Payload: make([]byte, size)}
			bt := &batch{}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				bt.reset()
				bt.addMessage(p, 4096, csidVideo, typeVideo, 1, 40)
				_ = bt.buffers()
			}
		})
	}
}
