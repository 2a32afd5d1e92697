package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestHubStatsOutliveStreams checks that the hub's cumulative counters keep what a
// stream counted after its entry is removed, and count evictions by reason.
func TestHubStatsOutliveStreams(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{QueuePackets: 4, SlowGrace: time.Nanosecond, PlayWait: 20 * time.Millisecond})

	// A publisher and one reader: bytes in and out.
	p := publish(t, h, "live/a")
	s := subscribe(t, h, "live/a", relay.SubscribeOptions{})
	p.WritePacket(video(0, true, 1))
	p.WritePacket(video(40, false, 2))
	got := drain(t, s)
	var out int64
	for _, f := range got {
		out += int64(len(f.Packet.Payload))
	}
	st := h.Stats()
	if st.BytesIn != 16 || st.BytesOut != out || out == 0 {
		t.Fatalf("live stream: %+v, want 16 bytes in, %d out", st, out)
	}

	// Both leave: the stream entry is removed, the counters stay.
	s.Close()
	p.Close()
	if _, ok := h.Stream("live/a"); ok {
		t.Fatal("stream entry still there")
	}
	if st2 := h.Stats(); st2.BytesIn != st.BytesIn || st2.BytesOut != st.BytesOut {
		t.Fatalf("after the stream left: %+v, want %+v", st2, st)
	}

	// A subscriber that never reads overflows (drops) and is evicted as slow.
	p = publish(t, h, "live/b")
	slow := subscribe(t, h, "live/b", relay.SubscribeOptions{})
	for i := range 20 {
		p.WritePacket(video(int64(i*40), i%5 == 0, uint64(i)))
		time.Sleep(time.Millisecond)
	}
	waitErr(t, readErr(slow), relay.ErrSlowSubscriber)
	st = h.Stats()
	if st.EvictedSlow != 1 || st.Dropped == 0 || st.BytesIn != 16+20*8 {
		t.Errorf("slow subscriber: %+v, want 1 evicted slow, some dropped, %d bytes in", st, 16+20*8)
	}
	p.Close()

	// A subscriber with no publisher gives up after PlayWait.
	lonely := subscribe(t, h, "live/c", relay.SubscribeOptions{})
	waitErr(t, readErr(lonely), relay.ErrNoPublisher)
	if st := h.Stats(); st.EvictedNoPublisher != 1 {
		t.Errorf("no publisher: %+v, want 1 evicted for no publisher", st)
	}

	// Hub.Close folds what live streams counted.
	p = publish(t, h, "live/d")
	p.WritePacket(video(0, true, 1))
	before := h.Stats()
	h.Close()
	if after := h.Stats(); after.BytesIn != before.BytesIn {
		t.Errorf("after Close: %+v, want %+v", after, before)
	}
}

// readErr reads s until it returns an error.
func readErr(s *relay.Subscriber) error {
	ctx := context.Background()
	for {
		if _, err := s.Read(ctx, nil); err != nil {
			return err
		}
	}
}
