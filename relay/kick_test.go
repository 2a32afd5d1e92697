package relay_test

import (
	"errors"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/rs/zerolog"
)

func TestKick(t *testing.T) {
	h, err := relay.New(relay.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Kick("live/none", nil); !errors.Is(err, relay.ErrNoPublisher) {
		t.Fatalf("Kick without a publisher: %v, want ErrNoPublisher", err)
	}
	kicked := 0
	if _, err := h.Publish("live/s", relay.PublisherInfo{Owner: "alice", Kick: func() { kicked++ }}); err != nil {
		t.Fatal(err)
	}
	byOwner := func(who string) func(relay.PublisherInfo) bool {
		return func(pi relay.PublisherInfo) bool { return pi.Owner == who }
	}
	if err := h.Kick("live/s", byOwner("bob")); !errors.Is(err, relay.ErrAccessDenied) {
		t.Fatalf("Kick by bob: %v, want ErrAccessDenied", err)
	}
	if kicked != 0 {
		t.Fatal("refused Kick called the callback")
	}
	if err := h.Kick("live/s", byOwner("alice")); err != nil {
		t.Fatalf("Kick by alice: %v", err)
	}
	if kicked != 1 {
		t.Fatalf("callback called %d times, want 1", kicked)
	}
	if _, ok := h.Stream("live/s"); ok {
		t.Fatal("kicked stream still listed")
	}
	if _, err := h.Publish("live/s", relay.PublisherInfo{}); err != nil {
		t.Fatalf("publish after kick: %v", err)
	}
}

// TestPublisherOnClose: OnClose runs once per publisher, whether it closes itself, is
// kicked, or is closed after Hub.Close already dropped it; and it runs without hub
// locks (it can call back into the hub).
func TestPublisherOnClose(t *testing.T) {
	h, err := relay.New(relay.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	publish := func(key string) *relay.Publisher {
		t.Helper()
		p, err := h.Publish(key, relay.PublisherInfo{OnClose: func() {
			calls[key]++
			h.Streams() // takes the hub lock: must not deadlock
		}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p := publish("live/closed")
	p.Close()
	p.Close()

	k := publish("live/kicked")
	if err := h.Kick("live/kicked", nil); err != nil {
		t.Fatal(err)
	}
	k.Close() // the protocol layer closes its publisher when the connection ends

	late := publish("live/hubclosed")
	h.Close()
	if calls["live/hubclosed"] != 0 {
		t.Fatal("OnClose ran before the publisher's Close")
	}
	late.Close()

	for _, key := range []string{"live/closed", "live/kicked", "live/hubclosed"} {
		if calls[key] != 1 {
			t.Errorf("%s: OnClose called %d times, want 1", key, calls[key])
		}
	}
}
