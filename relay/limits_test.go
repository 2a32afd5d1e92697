package relay_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestSetLimits changes the queue and GOP caps while a stream plays: the subscriber
// that joined before keeps its queue cap, one that joins after gets the new one, the
// GOP cache applies the new cap from the next frame, and nothing is dropped or ended
// by the change itself.
func TestSetLimits(t *testing.T) {
	h := newHub(t, relay.Config{QueuePackets: 1000, QueueDuration: time.Hour, SlowGrace: time.Hour})
	p := publish(t, h, "live/a")
	p.WritePacket(vseq(0, 1))
	p.WritePacket(video(0, true, 1))
	p.WritePacket(video(40, false, 2))
	before := subscribe(t, h, "live/a", relay.SubscribeOptions{})

	if err := h.SetLimits(relay.Config{QueuePackets: 8, QueueDuration: time.Hour, SlowGrace: time.Hour, GOPFrames: 2}); err != nil {
		t.Fatal(err)
	}
	if got := h.Limits(); got.QueuePackets != 8 || got.GOPFrames != 2 || got.QueueBytes != relay.DefaultQueueBytes || got.PlayWait != relay.DefaultPlayWait {
		t.Errorf("Limits() = %+v, want the new caps and defaults for zero fields", got)
	}
	// The cached GOP (2 frames) is still there; the next frame goes over the new cap
	// of 2 and empties it, so a subscriber joining then waits for the next keyframe.
	p.WritePacket(video(80, false, 3))
	after := subscribe(t, h, "live/a", relay.SubscribeOptions{})
	if d := describe(drain(t, after)); len(d) != 2 || d[1].Kind != relay.KindVideo || !d[1].Seq {
		t.Errorf("joined after a GOP above the new cap: %v, want stream start and the sequence header only", d)
	}
	for i := uint64(4); i < 40; i++ {
		p.WritePacket(video(int64(i)*40, i == 10, i))
	}
	if s := before.Stats(); s.Dropped != 0 || before.Queued() < 40 {
		t.Errorf("subscriber from before the change: %d queued, %d dropped; want its old cap of 1000 (no drops)", before.Queued(), s.Dropped)
	}
	if n, d := after.Queued(), after.Stats().Dropped; n > 8 || d == 0 {
		t.Errorf("subscriber from after the change: %d queued, %d dropped; want at most the new cap 8 and drops", n, d)
	}
	if st, _ := h.Stream("live/a"); !st.Live || st.Evicted != 0 {
		t.Errorf("stream after SetLimits: live %v, evicted %d; want live, none", st.Live, st.Evicted)
	}

	if err := h.SetLimits(relay.Config{GOPBytes: -1}); err == nil {
		t.Error("SetLimits with a negative GOPBytes: no error")
	}
	if got := h.Limits(); got.QueuePackets != 8 {
		t.Errorf("a refused SetLimits changed the limits: %+v", got)
	}
}

// TestSetLimitsConcurrent changes the limits while a publisher writes and subscribers
// join, read and leave; run with -race.
func TestSetLimitsConcurrent(t *testing.T) {
	h, err := relay.New(relay.Config{}, zeroLog())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := publish(t, h, "live/a")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.WritePacket(video(int64(i)*40, i%25 == 0, i))
		}
	})
	wg.Go(func() {
		for i := range 200 {
			if err := h.SetLimits(relay.Config{QueuePackets: 16 + i, GOPFrames: 10 + i%50}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 50 {
		s, err := h.Subscribe("live/a", relay.SubscribeOptions{Protocol: "rtmp"})
		if err != nil {
			t.Fatal(err)
		}
		var c checker
		for _, f := range drain(t, s) {
			c.check(t, f)
		}
		s.Close()
	}
	close(stop)
	wg.Wait()
}
