package relay_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

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
	return fanoutWith(tb, n, relay.SubscribeOptions{Protocol: "rtmp"})
}

// fanoutWith is fanout with the subscribers' options.
func fanoutWith(tb testing.TB, n int, opts relay.SubscribeOptions) (*relay.Publisher, []*relay.Subscriber) {
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
		if subs[i], err = h.Subscribe(key, opts); err != nil {
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

// TestFanoutWriteThroughZeroAlloc is TestFanoutZeroAlloc for subscribers served by
// the publisher's goroutine (SubscribeOptions.WriteThrough, as rtmp's TCP players
// are): each packet reaches every subscriber through its WriteThrough, which takes it
// with TryRead, and nothing is allocated, with or without Flush.
func TestFanoutWriteThroughZeroAlloc(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		t.Run(fmt.Sprint("flush=", deferred), func(t *testing.T) {
			dst := make([]relay.Frame, 0, 64)
			got := 0
			opts := relay.SubscribeOptions{Protocol: "rtmp", WriteThrough: func(s *relay.Subscriber) {
				var err error
				dst, err = s.TryRead(dst[:0])
				if err != nil {
					t.Errorf("TryRead: %v", err)
				}
				got += len(dst)
				clear(dst)
			}}
			p, subs := fanoutWith(t, 64, opts)
			for _, s := range subs {
				s.TryRead(make([]relay.Frame, 0, 8)) // the join's start event
			}
			ring := newPacketRing(1024)
			step := func() {
				p.WritePacket(ring.take())
				if deferred {
					p.Flush()
				}
			}
			for range 4 * gopLen {
				step()
			}
			if got != 4*gopLen*len(subs) {
				t.Fatalf("WriteThrough delivered %d frames, want %d", got, 4*gopLen*len(subs))
			}
			if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
				t.Errorf("%v allocations per packet with %d subscribers, want 0", allocs, len(subs))
			}
		})
	}
}

// TestWriteThrough checks when WritePacket calls SubscribeOptions.WriteThrough: once
// per packet queued for an idle subscriber (its queue was empty), never for one that
// has not taken what it was given, only at Flush once the publisher has called Flush
// (or after 10 ms), at Close, and never instead of waking a Read for events.
func TestWriteThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{})
		p := publish(t, h, key)
		calls := 0
		s := subscribe(t, h, key, relay.SubscribeOptions{WriteThrough: func(*relay.Subscriber) { calls++ }})
		drain(t, s) // the join's stream-start event

		p.WritePacket(video(0, true, 1))
		if calls != 1 || s.Queued() != 1 {
			t.Fatalf("after one packet: %d calls, %d queued; want 1, 1", calls, s.Queued())
		}
		p.WritePacket(audio(10, 2)) // the queue was not empty: its owner is already due
		if calls != 1 {
			t.Fatalf("a packet for a busy subscriber called WriteThrough (%d calls)", calls)
		}
		drain(t, s)

		p.Flush() // from now on calls wait for Flush
		p.WritePacket(audio(20, 3))
		p.WritePacket(audio(30, 4))
		if calls != 1 {
			t.Fatalf("WriteThrough called before Flush (%d calls)", calls)
		}
		p.Flush()
		if calls != 2 {
			t.Fatalf("Flush: %d calls, want 2", calls)
		}
		drain(t, s)

		p.WritePacket(audio(40, 5))
		time.Sleep(11 * time.Millisecond) // maxHold
		p.WritePacket(audio(50, 6))
		if calls != 3 {
			t.Fatalf("after 11 ms without Flush: %d calls, want 3", calls)
		}
		drain(t, s)

		p.WritePacket(audio(60, 7))
		p.Close()
		if calls != 4 {
			t.Fatalf("Close: %d calls, want 4 (it flushes)", calls)
		}
		// The end event wakes Read as before.
		fs, err := s.Read(t.Context(), nil)
		if err != nil || len(fs) == 0 {
			t.Fatalf("Read after Close = %d frames, %v", len(fs), err)
		}
	})
}

// TestFlushHoldingAudio checks that audio alone is held for up to the hold, and that
// video (or the hold running out) sends it.
func TestFlushHoldingAudio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{})
		p := publish(t, h, key)
		calls := 0
		s := subscribe(t, h, key, relay.SubscribeOptions{WriteThrough: func(s *relay.Subscriber) {
			calls++
			drain(t, s)
		}})
		drain(t, s)
		const hold = 20 * time.Millisecond

		p.FlushHoldingAudio(hold) // as a reader whose input ran dry: WritePacket defers from now on
		p.WritePacket(audio(0, 1))
		p.FlushHoldingAudio(hold)
		p.WritePacket(audio(10, 2))
		p.FlushHoldingAudio(hold)
		if calls != 0 {
			t.Fatalf("audio alone was not held (%d calls)", calls)
		}
		p.WritePacket(video(20, true, 3))
		p.FlushHoldingAudio(hold)
		if calls != 1 {
			t.Fatalf("video did not send the held audio (%d calls)", calls)
		}

		p.WritePacket(audio(30, 4))
		p.FlushHoldingAudio(hold)
		time.Sleep(hold)
		p.FlushHoldingAudio(hold)
		if calls != 2 {
			t.Fatalf("audio held longer than the hold (%d calls)", calls)
		}

		p.WritePacket(audio(60, 5))
		p.FlushHoldingAudio(hold)
		time.Sleep(hold)
		p.WritePacket(audio(80, 6)) // WritePacket ends a hold that ran out too
		if calls != 3 {
			t.Fatalf("WritePacket after the hold: %d calls, want 3", calls)
		}
	})
}

// TestWaitTryRead checks Wait and TryRead, the pair a writer that shares its output
// with WriteThrough uses: Wait returns once something is queued or Wake is called and
// takes nothing; TryRead never blocks.
func TestWaitTryRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{})
		p := publish(t, h, key)
		s := subscribe(t, h, key, relay.SubscribeOptions{})
		drain(t, s)
		if fs, err := s.TryRead(make([]relay.Frame, 0, 4)); err != nil || len(fs) != 0 {
			t.Fatalf("TryRead on an empty queue = %d frames, %v", len(fs), err)
		}
		done := make(chan error)
		go func() { done <- s.Wait(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v with nothing queued", err)
		default:
		}
		p.WritePacket(video(0, true, 1))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s.Queued() != 1 {
			t.Fatal("Wait took the frame")
		}
		fs, err := s.TryRead(make([]relay.Frame, 0, 4))
		if err != nil || len(fs) != 1 || frameNo(fs[0].Packet) != 1 {
			t.Fatalf("TryRead = %v, %v", describe(fs), err)
		}
		go func() { done <- s.Wait(context.Background()) }()
		synctest.Wait()
		s.Wake()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := s.Wait(context.Background()); err != relay.ErrClosed {
			t.Fatalf("Wait after Close = %v, want ErrClosed", err)
		}
		if _, err := s.TryRead(nil); err != relay.ErrClosed {
			t.Fatalf("TryRead after Close = %v, want ErrClosed", err)
		}
	})
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
