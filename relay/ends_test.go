package relay_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestSubscriberEnds ends subscribers of several protocols in every way and checks
// Hub.SubscriberEnds counts each under its reason: a kick of the publisher marks the
// subscribers attached then (not later joiners, and no longer once another publisher
// started), whatever ends them afterwards.
func TestSubscriberEnds(t *testing.T) {
	h, err := relay.New(relay.Config{PlayWait: 50 * time.Millisecond, QueuePackets: 4, SlowGrace: time.Nanosecond}, zeroLog())
	if err != nil {
		t.Fatal(err)
	}
	sub := func(key, proto string) *relay.Subscriber {
		s, err := h.Subscribe(key, relay.SubscribeOptions{Protocol: proto})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	readErr := func(s *relay.Subscriber) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		for {
			if _, err := s.Read(ctx, make([]relay.Frame, 0, 64)); err != nil {
				return err
			}
		}
	}

	// Kicked: the publisher of live/k is kicked; an HTTP-FLV viewer then waits out
	// PlayWait, an RTMP player's client leaves; a page viewer that joins after the
	// kick ends for no publisher.
	p := publish(t, h, "live/k")
	flv, rtmp := sub("live/k", "http-flv"), sub("live/k", "rtmp")
	if err := h.Kick("live/k", nil); err != nil {
		t.Fatal(err)
	}
	late := sub("live/k", "page")
	rtmp.Close()
	if err := readErr(flv); !errors.Is(err, relay.ErrNoPublisher) {
		t.Fatalf("viewer of a kicked stream: %v, want ErrNoPublisher after PlayWait", err)
	}
	flv.Close()
	if err := readErr(late); !errors.Is(err, relay.ErrNoPublisher) {
		t.Fatalf("late viewer: %v", err)
	}
	late.Close()
	_ = p

	// A kick followed by a new publisher: the subscriber plays again and its later
	// end is its own (a write timeout, said by its output).
	publish(t, h, "live/r")
	again := sub("live/r", "http-flv")
	if err := h.Kick("live/r", nil); err != nil {
		t.Fatal(err)
	}
	publish(t, h, "live/r")
	again.CloseReason(relay.EndReasonOf(fmt.Errorf("write: %w", os.ErrDeadlineExceeded)))

	// Slow: an HLS muxer standing for 3 viewers falls behind and is evicted.
	ps := publish(t, h, "live/s")
	hls, err := h.Subscribe("live/s", relay.SubscribeOptions{Protocol: "hls", Viewers: func() int { return 3 }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(20) {
		ps.WritePacket(video(int64(i)*40, i%10 == 0, i))
	}
	if err := readErr(hls); !errors.Is(err, relay.ErrSlowSubscriber) {
		t.Fatalf("HLS muxer: %v, want ErrSlowSubscriber", err)
	}
	hls.Close()

	// Client closed, bad input, and shutdown.
	sub("live/c", "rtmpt").Close()
	sub("live/c", "rtmp").CloseReason(relay.EndBadInput)
	sub("live/c", "rtmp").CloseReason("nonsense")
	open := sub("live/c", "page")
	h.Close()
	open.Close() // after the hub ended it: not counted again

	want := map[string]map[string]int64{
		"http-flv": {relay.EndKicked: 1, relay.EndTimeout: 1},
		"rtmp":     {relay.EndKicked: 1, relay.EndBadInput: 1, relay.EndClient: 1},
		"page":     {relay.EndNoPublisher: 1, relay.EndShutdown: 1},
		"hls":      {relay.EndSlow: 3},
		"rtmpt":    {relay.EndClient: 1},
	}
	got := h.SubscriberEnds()
	if len(got) != len(want) {
		t.Errorf("protocols %v, want %v", got, want)
	}
	for proto, reasons := range want {
		if len(got[proto]) != len(relay.EndReasons) {
			t.Errorf("%s: %d reasons, want all %d", proto, len(got[proto]), len(relay.EndReasons))
		}
		for _, r := range relay.EndReasons {
			if got[proto][r] != reasons[r] {
				t.Errorf("%s %s: %d, want %d", proto, r, got[proto][r], reasons[r])
			}
		}
	}
}
