package relay_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestOnPublish: a listener hears every successful publish with its key and info
// (Mode included), not a refused one, and not after its removal.
func TestOnPublish(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	type call struct {
		key  string
		info relay.PublisherInfo
	}
	var mu sync.Mutex
	var calls []call
	remove := h.OnPublish(func(key string, info relay.PublisherInfo) {
		mu.Lock()
		calls = append(calls, call{key, info})
		mu.Unlock()
	})
	var order []int
	removeA := h.OnPublish(func(string, relay.PublisherInfo) { order = append(order, 1) })
	removeB := h.OnPublish(func(string, relay.PublisherInfo) { order = append(order, 2) })

	p, err := h.Publish("live/a", relay.PublisherInfo{Protocol: "rtmp", Remote: "r", Mode: "record"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish("live/a", relay.PublisherInfo{Protocol: "rtmp"}); err == nil {
		t.Fatal("second publish of live/a succeeded")
	}
	if _, err := h.Publish("bad", relay.PublisherInfo{}); err == nil {
		t.Fatal("publish of a bad key succeeded")
	}
	removeA()
	removeA() // idempotent
	p.Close()
	p2 := publish(t, h, "live/b")
	defer p2.Close()
	remove()
	removeB()
	p3 := publish(t, h, "live/c")
	defer p3.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[0].key != "live/a" || calls[0].info.Mode != "record" ||
		calls[0].info.Remote != "r" || calls[1].key != "live/b" {
		t.Fatalf("calls = %+v, want live/a (record) and live/b", calls)
	}
	if want := []int{1, 2, 2}; len(order) != len(want) || order[0] != 1 || order[1] != 2 || order[2] != 2 {
		t.Fatalf("listener order = %v, want %v", order, want)
	}
}

// TestOnPublishSubscriberSeesEverything: a subscriber attached by the listener gets
// every packet of the publish from the first one, timestamps from 0, and may call
// the hub without deadlocking.
func TestOnPublishSubscriberSeesEverything(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	subs := make(chan *relay.Subscriber, 1)
	defer h.OnPublish(func(key string, info relay.PublisherInfo) {
		if _, ok := h.Stream(key); !ok {
			t.Errorf("Stream(%q) inside the listener: not found", key)
		}
		s, err := h.Subscribe(key, relay.SubscribeOptions{Protocol: "record", Viewers: func() int { return 0 }})
		if err != nil {
			t.Errorf("Subscribe inside the listener: %v", err)
			return
		}
		subs <- s
	})()
	p := publish(t, h, "live/x")
	sub := <-subs
	defer sub.Close()
	pkts := []*relay.Packet{meta(500), vseq(500, 1), aseq(500, 1), video(500, true, 1), audio(510, 2), video(540, false, 3)}
	for _, pk := range pkts {
		p.WritePacket(pk)
	}
	if ss, _ := h.Stream("live/x"); ss.Subscribers["record"] != 0 {
		t.Errorf("the record subscriber counts as %d viewers, want 0", ss.Subscribers["record"])
	}
	p.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var got []relay.Frame
	for len(got) < len(pkts)+2 { // stream start, the packets, stream end
		var err error
		if got, err = sub.Read(ctx, got); err != nil {
			t.Fatalf("Read after %d frames: %v", len(got), err)
		}
	}
	if got[0].Packet.Kind != relay.KindStreamStart || got[len(got)-1].Packet.Kind != relay.KindStreamEnd {
		t.Fatalf("first %v, last %v; want stream-start ... stream-end", got[0].Packet.Kind, got[len(got)-1].Packet.Kind)
	}
	for i, pk := range pkts {
		f := got[i+1]
		if f.Packet != pk {
			t.Fatalf("frame %d is %v@%d, want %v@%d", i, f.Packet.Kind, f.Packet.Timestamp, pk.Kind, pk.Timestamp)
		}
		if want := max(pk.Timestamp-500, 0); f.Timestamp != want {
			t.Errorf("frame %d timestamp %d, want %d", i, f.Timestamp, want)
		}
	}
}

// TestOnPublishConcurrent registers and removes listeners while publishes run (for
// -race).
func TestOnPublishConcurrent(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 50 {
				remove := h.OnPublish(func(string, relay.PublisherInfo) {})
				remove()
			}
		})
		wg.Go(func() {
			key := "live/c" + string(rune('0'+i))
			for range 50 {
				p, err := h.Publish(key, relay.PublisherInfo{})
				if err != nil {
					t.Error(err)
					return
				}
				p.Close()
			}
		})
	}
	wg.Wait()
}
