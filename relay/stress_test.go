package relay_test

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestStress runs one publisher (with reconnects), readers of different speeds
// and subscribers joining and leaving, all at once, under -race. Every reader checks
// the invariants of checker: monotonic time, keyframe first, no holes in video.
func TestStress(t *testing.T) {
	t.Parallel()
	packets := 20000
	if testing.Short() {
		packets = 4000
	}
	h := newHub(t, relay.Config{QueuePackets: 64, GOPFrames: 64})
	var wg sync.WaitGroup

	reader := func(s *relay.Subscriber, slow bool, stop <-chan struct{}) {
		var c checker
		buf := make([]relay.Frame, 0, 16)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			fs, err := s.Read(t.Context(), buf[:0])
			if err != nil {
				if !errors.Is(err, relay.ErrClosed) {
					t.Errorf("Read: %v", err)
				}
				return
			}
			for _, f := range fs {
				c.check(t, f)
			}
			if slow && i%8 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	for i := range 4 {
		s := subscribe(t, h, key, relay.SubscribeOptions{})
		wg.Go(func() { reader(s, i%2 == 1, nil) })
	}

	stop := make(chan struct{})
	wg.Go(func() { // joiners and leavers
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s, err := h.Subscribe(key, relay.SubscribeOptions{Protocol: "http-flv"})
			if err != nil {
				t.Errorf("Subscribe: %v", err)
				return
			}
			done := make(chan struct{})
			var rwg sync.WaitGroup
			rwg.Go(func() { reader(s, false, done) })
			for range i % 50 {
				runtime.Gosched()
			}
			close(done)
			s.Close()
			rwg.Wait()
		}
	})
	wg.Go(func() { // stats readers
		for {
			select {
			case <-stop:
				return
			default:
			}
			h.Streams()
			time.Sleep(100 * time.Microsecond)
		}
	})

	p := publish(t, h, key)
	var frame uint64
	for i := range packets {
		if i > 0 && i%(packets/4) == 0 { // reconnect; the new publisher's clock restarts
			p.Close()
			runtime.Gosched()
			p = publish(t, h, key)
		}
		ts := int64(i%(packets/4)) * 10
		switch {
		case i%(packets/4) == 0:
			p.WritePacket(meta(ts))
			p.WritePacket(vseq(ts, byte(i)))
			p.WritePacket(aseq(ts, byte(i)))
		case i%3 == 0:
			p.WritePacket(audio(ts, uint64(i)))
			continue
		}
		frame++
		p.WritePacket(video(ts, i%(packets/4)%30 == 0, frame))
		if i%64 == 0 {
			runtime.Gosched()
		}
	}
	if st, ok := h.Stream(key); ok {
		t.Logf("dropped %d packets, evicted %d subscribers, %v", st.Dropped, st.Evicted, st.Subscribers)
	}
	p.Close()
	close(stop)
	h.Close()
	wg.Wait()
	if len(h.Streams()) != 0 {
		t.Error("streams left after Close")
	}
}
