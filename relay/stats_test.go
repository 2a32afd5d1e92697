package relay_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestStats checks the stream snapshot: publisher, media info, byte counters,
// bitrates over the window, subscribers by protocol and sorting.
func TestStats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{})
		for _, k := range []string{"live/b", "app/z"} {
			subscribe(t, h, k, relay.SubscribeOptions{})
		}
		p, err := h.Publish("live/a", relay.PublisherInfo{Protocol: "rtmpt", Remote: "10.0.0.1:5000", Query: "key=secret"})
		if err != nil {
			t.Fatal(err)
		}
		p.SetMediaInfo(relay.MediaInfo{VideoCodec: "H264", Width: 1280})
		p.SetMediaInfo(relay.MediaInfo{Height: 720, AudioCodec: "AAC"})
		s1 := subscribe(t, h, "live/a", relay.SubscribeOptions{Protocol: "rtmp"})
		s2 := subscribe(t, h, "live/a", relay.SubscribeOptions{Protocol: "http-flv"})
		payload := make([]byte, 1000)
		for i := range 1000 { // 1000 bytes every 10 ms for 10 s: 800 kbit/s
			p.WritePacket(&relay.Packet{Kind: relay.KindVideo, Keyframe: true, Timestamp: int64(i * 10), Payload: payload})
			drain(t, s1)
			drain(t, s2)
			time.Sleep(10 * time.Millisecond)
		}
		list := h.Streams()
		keys := make([]string, 0, len(list))
		for _, st := range list {
			keys = append(keys, st.Key)
		}
		if want := []string{"app/z", "live/a", "live/b"}; !slices.Equal(keys, want) {
			t.Fatalf("Streams keys %v, want %v", keys, want)
		}
		st := list[1]
		if !st.Live || st.Publisher == nil || st.Publisher.Protocol != "rtmpt" || st.Publisher.Remote != "10.0.0.1:5000" {
			t.Errorf("publisher %+v", st.Publisher)
		}
		if want := (relay.MediaInfo{VideoCodec: "H264", AudioCodec: "AAC", Width: 1280, Height: 720}); st.Media != want {
			t.Errorf("media %+v, want %+v", st.Media, want)
		}
		if st.BytesIn != 1000*1000 || st.BytesOut != 2*1000*1000 {
			t.Errorf("bytes in %d out %d", st.BytesIn, st.BytesOut)
		}
		near := func(name string, got, want int64) {
			if got < want*9/10 || got > want*11/10 {
				t.Errorf("%s = %d bit/s, want about %d", name, got, want)
			}
		}
		near("BitrateIn", st.BitrateIn, 800_000)
		near("BitrateOut", st.BitrateOut, 1_600_000)
		if st.Subscribers["rtmp"] != 1 || st.Subscribers["http-flv"] != 1 || len(st.Subscribers) != 2 {
			t.Errorf("subscribers %v", st.Subscribers)
		}
		if st.UptimeSec != 10 {
			t.Errorf("uptime %v s, want 10", st.UptimeSec)
		}
		if list[0].Live || list[0].Publisher != nil || list[0].Subscribers["rtmp"] != 1 {
			t.Errorf("waiting stream %+v", list[0])
		}
		js, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(js), "secret") {
			t.Error("query leaked into stats")
		}

		// Bytes read by a subscriber that left still count.
		s2.Close()
		if st, _ := h.Stream("live/a"); st.BytesOut != 2*1000*1000 {
			t.Errorf("bytes out after a subscriber left %d", st.BytesOut)
		}
		p.Close()
		time.Sleep(time.Second)
		if st, _ := h.Stream("live/a"); st.Live || st.BitrateIn != 0 || st.UptimeSec != 0 {
			t.Errorf("after the publisher left: %+v", st)
		}
	})
}

// TestStatsViewers checks SubscribeOptions.Viewers: a shared output (one HLS muxer)
// counts as the viewers it reports, including zero, not as one subscriber.
func TestStatsViewers(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	n := 3
	s, err := h.Subscribe("live/v", relay.SubscribeOptions{Protocol: "hls", Viewers: func() int { return n }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := h.Subscribe("live/v", relay.SubscribeOptions{Protocol: "http-flv"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, _ := h.Stream("live/v")
	if st.Subscribers["hls"] != 3 || st.Subscribers["http-flv"] != 1 {
		t.Fatalf("subscribers %v, want hls 3, http-flv 1", st.Subscribers)
	}
	n = 0
	if st, _ := h.Stream("live/v"); st.Subscribers["hls"] != 0 {
		t.Fatalf("subscribers %v, want hls 0", st.Subscribers)
	}
}
