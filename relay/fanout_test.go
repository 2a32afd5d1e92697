package relay_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/rs/zerolog"
)

// packetRing is a reusable supply of packets for allocation tests and benchmarks:
// one keyframe every gopLen packets, 40 ms apart. A packet is reused only after
// every subscriber has read it and the GOP cache has moved past it (the caller drains
// at least every gopLen packets), so reusing it does not change a live packet.
type packetRing struct {
	pkts []*relay.Packet
	next int
	ts   int64
}

const gopLen = 32

func newPacketRing(size int) *packetRing {
	r := &packetRing{}
	payload := make([]byte, size)
	for i := range 2 * gopLen {
		r.pkts = append(r.pkts, &relay.Packet{Kind: relay.KindVideo, Keyframe: i%gopLen == 0, Payload: payload})
	}
	return r
}

func (r *packetRing) take() *relay.Packet {
	p := r.pkts[r.next]
	r.next = (r.next + 1) % len(r.pkts)
	r.ts += 40
	p.Timestamp = r.ts
	return p
}

// fanout sets up a hub with one publisher and n subscribers on it.
func fanout(tb testing.TB, n int) (*relay.Publisher, []*relay.Subscriber) {
	h, err := relay.New(relay.Config{}, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	p, err := h.Publish(key, relay.PublisherInfo{Protocol: "rtmp"})
	if err != nil {
		tb.Fatal(err)
	}
	subs := make([]*relay.Subscriber, n)
	for i := range subs {
		if subs[i], err = h.Subscribe(key, relay.SubscribeOptions{Protocol: "rtmp"}); err != nil {
			tb.Fatal(err)
		}
	}
	return p, subs
}

// TestFanoutZeroAlloc checks the steady-state invariant: publishing a packet to N
// subscribers and each of them reading it into a reused slice allocates nothing,
// whatever N.
func TestFanoutZeroAlloc(t *testing.T) {
	for _, n := range []int{1, 64} {
		t.Run(fmt.Sprint("subs=", n), func(t *testing.T) {
			p, subs := fanout(t, n)
			ring := newPacketRing(1024)
			dst := make([]relay.Frame, 0, 64)
			ctx := context.Background()
			step := func() {
				p.WritePacket(ring.take())
				for _, s := range subs {
					var err error
					if dst, err = s.Read(ctx, dst[:0]); err != nil || len(dst) == 0 {
						t.Fatalf("Read = %d frames, %v", len(dst), err)
					}
				}
			}
			for range 4 * gopLen { // grow the queues and the GOP cache
				step()
			}
			if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
				t.Errorf("%v allocations per packet with %d subscribers, want 0", allocs, n)
			}
		})
	}
}

// BenchmarkFanout measures publishing one 1 KiB video packet to N subscribers on
// one stream, including each subscriber reading it (drained every 32 packets into
// a reused slice, as a player's writer loop does). ns/op and allocs/op are per
// published packet; bytes/op count the payload delivered to all N subscribers.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint("subs=", n), func(b *testing.B) {
			p, subs := fanout(b, n)
			ring := newPacketRing(1024)
			dst := make([]relay.Frame, 0, 64)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(1024 * n))
			i := 0
			for b.Loop() {
				p.WritePacket(ring.take())
				if i++; i%gopLen == 0 {
					for _, s := range subs {
						dst, _ = s.Read(ctx, dst[:0])
					}
				}
			}
		})
	}
}
