package relay_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

const key = "live/cam"

// TestJoinOrder checks the instant start: event, metadata, sequence headers, then
// the GOP from the latest keyframe, then live packets.
func TestJoinOrder(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	for _, pkt := range []*relay.Packet{
		meta(0), vseq(0, 1), aseq(0, 1),
		video(1000, true, 1), audio(1010, 1), video(1040, false, 2), // an older GOP
		video(2000, true, 3), audio(1990, 2), video(2040, false, 4), audio(2050, 3),
	} {
		p.WritePacket(pkt)
	}
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	p.WritePacket(video(2080, false, 5))

	got := drain(t, s)
	want := []desc{
		{Kind: relay.KindStreamStart},
		{Kind: relay.KindMetadata},
		{Kind: relay.KindVideo, Key: true, Seq: true},
		{Kind: relay.KindAudio, Seq: true},
		{Kind: relay.KindVideo, Key: true, N: 3},
		{Kind: relay.KindAudio, N: 2},
		{Kind: relay.KindVideo, N: 4},
		{Kind: relay.KindAudio, N: 3},
		{Kind: relay.KindVideo, N: 5},
	}
	if d := describe(got); !slices.Equal(d, want) {
		t.Fatalf("frames:\n got %v\nwant %v", d, want)
	}
	// The start frames carry the time of the keyframe that follows (0); the audio
	// frame 10 ms before the keyframe is clamped to it.
	wantTS := []int64{0, 0, 0, 0, 0, 0, 40, 50, 80}
	for i, f := range got {
		if f.Timestamp != wantTS[i] {
			t.Errorf("frame %d (%v) at %d ms, want %d", i, f.Packet.Kind, f.Timestamp, wantTS[i])
		}
	}
}

// TestLiveSeqHeaderReplaced checks that a new sequence header and new metadata are
// forwarded live and given to later subscribers instead of the old ones.
func TestLiveSeqHeaderReplaced(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	p.WritePacket(vseq(0, 1))
	p.WritePacket(video(0, true, 1))
	s1 := subscribe(t, h, key, relay.SubscribeOptions{})
	newSeq, newMeta := vseq(100, 2), meta(100)
	p.WritePacket(newSeq)
	p.WritePacket(newMeta)
	p.WritePacket(video(140, false, 2)) // GOP invalidated by the new configuration
	got := drain(t, s1)
	if n := len(got); n < 2 || got[n-3].Packet != newSeq || got[n-2].Packet != newMeta {
		t.Fatalf("live frames = %v, want the new sequence header and metadata forwarded", describe(got))
	}

	s2 := subscribe(t, h, key, relay.SubscribeOptions{})
	p.WritePacket(video(200, true, 3))
	got = drain(t, s2)
	want := []desc{
		{Kind: relay.KindStreamStart},
		{Kind: relay.KindMetadata},
		{Kind: relay.KindVideo, Key: true, Seq: true},
		{Kind: relay.KindVideo, Key: true, N: 3},
	}
	if d := describe(got); !slices.Equal(d, want) {
		t.Fatalf("frames:\n got %v\nwant %v", d, want)
	}
	if got[1].Packet != newMeta || got[2].Packet != newSeq {
		t.Errorf("late joiner got stale metadata or sequence header")
	}
}

// TestLateJoinerKeyframeFirst checks that a subscriber joining while the GOP cache
// is over its cap skips video until the next keyframe but gets audio.
func TestLateJoinerKeyframeFirst(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{GOPFrames: 4})
	p := publish(t, h, key)
	p.WritePacket(vseq(0, 1))
	p.WritePacket(video(0, true, 1))
	for i := range 5 { // overflows the 4-frame GOP cap
		p.WritePacket(video(int64(40*(i+1)), false, uint64(2+i)))
	}
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	p.WritePacket(audio(230, 1))
	p.WritePacket(video(240, false, 7))
	p.WritePacket(video(280, true, 8))
	p.WritePacket(video(320, false, 9))
	want := []desc{
		{Kind: relay.KindStreamStart},
		{Kind: relay.KindVideo, Key: true, Seq: true},
		{Kind: relay.KindAudio, N: 1},
		{Kind: relay.KindVideo, Key: true, N: 8},
		{Kind: relay.KindVideo, N: 9},
	}
	if d := describe(drain(t, s)); !slices.Equal(d, want) {
		t.Fatalf("frames:\n got %v\nwant %v", d, want)
	}
	if st := s.Stats(); st.Dropped != 0 {
		t.Errorf("skipping to the first keyframe counted %d drops, want 0", st.Dropped)
	}
}

// TestPublishBusy checks that a second publisher is refused and the first one and
// its subscribers carry on.
func TestPublishBusy(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	p.WritePacket(video(0, true, 1))
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	if _, err := h.Publish(key, relay.PublisherInfo{Protocol: "rtmp"}); !errors.Is(err, relay.ErrStreamBusy) {
		t.Fatalf("second Publish = %v, want ErrStreamBusy", err)
	}
	p.WritePacket(video(40, false, 2))
	want := []desc{
		{Kind: relay.KindStreamStart},
		{Kind: relay.KindVideo, Key: true, N: 1},
		{Kind: relay.KindVideo, N: 2},
	}
	if d := describe(drain(t, s)); !slices.Equal(d, want) {
		t.Fatalf("frames:\n got %v\nwant %v", d, want)
	}
	st, _ := h.Stream(key)
	if !st.Live || st.Publisher == nil || st.Publisher.Remote != "127.0.0.1:1" {
		t.Errorf("stats after refused publish: %+v", st)
	}
}

// TestSubscribeBeforePublisher checks that Read blocks until a publisher appears and
// that the subscriber then starts like any other.
func TestSubscribeBeforePublisher(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{PlayWait: time.Minute})
		s := subscribe(t, h, key, relay.SubscribeOptions{})
		got := make(chan []relay.Frame)
		go func() {
			var all []relay.Frame
			var c checker
			for len(all) < 4 {
				fs, err := s.Read(t.Context(), make([]relay.Frame, 0, 8))
				if err != nil {
					t.Errorf("Read: %v", err)
					break
				}
				for _, f := range fs {
					c.check(t, f)
				}
				all = append(all, fs...)
			}
			got <- all
		}()
		time.Sleep(30 * time.Second) // Read is blocked; PlayWait not reached
		synctest.Wait()
		p := publish(t, h, key)
		p.WritePacket(vseq(5000, 1))
		p.WritePacket(video(5000, false, 1)) // not a keyframe: skipped
		p.WritePacket(video(5040, true, 2))
		p.WritePacket(video(5080, false, 3))
		want := []desc{
			{Kind: relay.KindStreamStart},
			{Kind: relay.KindVideo, Key: true, Seq: true},
			{Kind: relay.KindVideo, Key: true, N: 2},
			{Kind: relay.KindVideo, N: 3},
		}
		fs := <-got
		if d := describe(fs); !slices.Equal(d, want) {
			t.Fatalf("frames:\n got %v\nwant %v", d, want)
		}
		if fs[2].Timestamp != 0 || fs[3].Timestamp != 40 {
			t.Errorf("timestamps %d, %d; want 0, 40", fs[2].Timestamp, fs[3].Timestamp)
		}
	})
}

// TestPublisherReconnect checks that subscribers stay attached across a publisher
// reconnect: StreamEnd, StreamStart, keyframe first, timestamps continuing.
func TestPublisherReconnect(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	p.WritePacket(vseq(0, 1))
	p.WritePacket(video(100000, true, 1))
	p.WritePacket(video(100040, false, 2))
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	var c checker
	for _, f := range drain(t, s) {
		c.check(t, f)
	}
	p.Close()
	p.Close()                              // idempotent
	p.WritePacket(video(100080, false, 3)) // after Close: ignored

	if _, ok := h.Stream(key); !ok {
		t.Fatal("stream entry removed while a subscriber is attached")
	}
	p2 := publish(t, h, key)
	p2.WritePacket(meta(0))
	p2.WritePacket(vseq(0, 2))
	p2.WritePacket(video(0, false, 10)) // the new publisher starts mid-GOP
	p2.WritePacket(audio(10, 1))
	p2.WritePacket(video(40, true, 11))
	p2.WritePacket(video(80, false, 12))

	got := drain(t, s)
	want := []desc{
		{Kind: relay.KindStreamEnd},
		{Kind: relay.KindStreamStart},
		{Kind: relay.KindMetadata},
		{Kind: relay.KindVideo, Key: true, Seq: true},
		{Kind: relay.KindAudio, N: 1},
		{Kind: relay.KindVideo, Key: true, N: 11},
		{Kind: relay.KindVideo, N: 12},
	}
	if d := describe(got); !slices.Equal(d, want) {
		t.Fatalf("frames:\n got %v\nwant %v", d, want)
	}
	for _, f := range got {
		c.check(t, f)
	}
	// The old session ended at 40 ms; the new one continues right after it.
	if end, first := got[0].Timestamp, got[4].Timestamp; end != 40 || first <= end || first > end+10 {
		t.Errorf("StreamEnd at %d, first new frame at %d; want 40 and a little after", end, first)
	}
	if got[5].Timestamp-got[4].Timestamp != 30 {
		t.Errorf("keyframe %d ms after audio, want 30", got[5].Timestamp-got[4].Timestamp)
	}
}

// TestOverflowDropsToKeyframe checks the drop policy: queued video goes, the
// subscriber waits for the next keyframe, and audio, metadata and sequence headers
// survive.
func TestOverflowDropsToKeyframe(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{QueuePackets: 16})
	p := publish(t, h, key)
	p.WritePacket(meta(0))
	p.WritePacket(vseq(0, 1))
	p.WritePacket(aseq(0, 1))
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	p.WritePacket(video(0, true, 1))
	n := uint64(2)
	for i := range 12 { // 4 start frames + 1 + 12 = 17 > 16
		ts := int64(40 * (i + 1))
		if i%3 == 0 {
			p.WritePacket(audio(ts, uint64(i)))
			continue
		}
		p.WritePacket(video(ts, false, n))
		n++
	}
	newSeq := vseq(500, 2)
	p.WritePacket(newSeq)
	p.WritePacket(video(520, false, n)) // still waiting: dropped
	p.WritePacket(video(540, true, n+1))
	p.WritePacket(video(580, false, n+2))

	got := drain(t, s)
	var c checker
	var audioN, seqs int
	for _, f := range got {
		c.check(t, f)
		switch {
		case f.Packet.SeqHeader || f.Packet.Kind == relay.KindMetadata:
			seqs++
		case f.Packet.Kind == relay.KindAudio:
			audioN++
		}
	}
	if audioN != 4 || seqs != 4 {
		t.Errorf("got %d audio frames and %d headers, want all 4 and 4: %v", audioN, seqs, describe(got))
	}
	want := []desc{{Kind: relay.KindVideo, Key: true, N: n + 1}, {Kind: relay.KindVideo, N: n + 2}}
	if d := describe(got); !slices.Equal(d[len(d)-2:], want) {
		t.Errorf("frames end with %v, want %v", d, want)
	}
	// Dropped: the 8 queued video frames (1 keyframe + 7) when the 9th did not fit,
	// the frame that did not fit and the one after the sequence header.
	if st := s.Stats(); st.Dropped != 10 {
		t.Errorf("subscriber dropped %d, want 10", st.Dropped)
	}
	if st, _ := h.Stream(key); st.Dropped != 10 {
		t.Errorf("stream dropped %d, want 10", st.Dropped)
	}
}

// TestOverflowDropsOldestAudio checks that when dropping video is not enough, the
// oldest audio goes, never the headers.
func TestOverflowDropsOldestAudio(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{QueuePackets: 8, QueueDuration: time.Second})
	p := publish(t, h, key)
	p.WritePacket(aseq(0, 1))
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	for i := range 100 { // 20 ms audio frames: 2 s
		p.WritePacket(audio(int64(20*i), uint64(i)))
	}
	got := drain(t, s)
	d := describe(got)
	if len(d) != 8 || d[0].Kind != relay.KindStreamStart || !d[1].Seq {
		t.Fatalf("frames %v: want start, sequence header and the newest 6 audio frames", d)
	}
	for i, f := range d[2:] {
		if want := uint64(94 + i); f.N != want {
			t.Errorf("audio frame %d is %d, want %d", i, f.N, want)
		}
	}
}

// TestQueueDurationLimit checks the duration limit with byte and packet limits far.
func TestQueueDurationLimit(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{QueueDuration: 500 * time.Millisecond})
	p := publish(t, h, key)
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	for i := range 50 {
		p.WritePacket(audio(int64(20*i), uint64(i)))
	}
	got := drain(t, s)
	if span := got[len(got)-1].Timestamp - got[1].Timestamp; span > 500 {
		t.Errorf("queued %d ms, want at most 500", span)
	}
	if s.Stats().Dropped == 0 {
		t.Error("no drops counted")
	}
}

// TestSlowSubscriberEvicted checks that a subscriber that stays behind longer than
// SlowGrace is evicted: Read fails, OnEvict runs once, the stream counts it.
func TestSlowSubscriberEvicted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{QueuePackets: 32, SlowGrace: 5 * time.Second})
		p := publish(t, h, key)
		var evictions atomic.Int32
		var evictErr atomic.Value
		slow := subscribe(t, h, key, relay.SubscribeOptions{OnEvict: func(err error) {
			evictions.Add(1)
			evictErr.Store(err)
		}})
		fast := subscribe(t, h, key, relay.SubscribeOptions{})
		var c checker
		var fastFrames int
		for i := range 400 { // 40 ms apart: 16 s
			p.WritePacket(video(int64(40*i), i%25 == 0, uint64(i+1)))
			for _, f := range drain(t, fast) {
				c.check(t, f)
				fastFrames++
			}
			time.Sleep(40 * time.Millisecond)
		}
		if n := evictions.Load(); n != 1 {
			t.Fatalf("OnEvict called %d times, want 1", n)
		}
		if err, _ := evictErr.Load().(error); !errors.Is(err, relay.ErrSlowSubscriber) {
			t.Errorf("OnEvict(%v), want ErrSlowSubscriber", err)
		}
		_, err := slow.Read(t.Context(), nil)
		waitErr(t, err, relay.ErrSlowSubscriber)
		if fastFrames != 401 {
			t.Errorf("fast subscriber got %d frames, want 401", fastFrames)
		}
		st, _ := h.Stream(key)
		if st.Evicted != 1 || st.Subscribers["rtmp"] != 1 {
			t.Errorf("stats: evicted %d, subscribers %v; want 1 and 1", st.Evicted, st.Subscribers)
		}
		slow.Close()
		if evictions.Load() != 1 {
			t.Error("OnEvict called again by Close")
		}
	})
}

// TestBehindThenCaughtUpNotEvicted checks that a subscriber that overflows but
// then drains its queue is not evicted, however long the stream runs.
func TestBehindThenCaughtUpNotEvicted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{QueuePackets: 32, SlowGrace: 2 * time.Second})
		p := publish(t, h, key)
		s := subscribe(t, h, key, relay.SubscribeOptions{OnEvict: func(err error) {
			t.Errorf("evicted: %v", err)
		}})
		var c checker
		for i := range 500 {
			p.WritePacket(video(int64(40*i), i%25 == 0, uint64(i+1)))
			// Stall for 1.6 s every 4 s: overflows each time, catches up each time.
			if i%100 > 40 {
				for _, f := range drain(t, s) {
					c.check(t, f)
				}
			}
			time.Sleep(40 * time.Millisecond)
		}
		if s.Stats().Dropped == 0 {
			t.Error("no drops: the test did not overflow the queue")
		}
	})
}

// TestPlayWait checks ErrNoPublisher after PlayWait, both for a subscriber that
// never saw a publisher and for one whose publisher left, and the stream removal.
func TestPlayWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{PlayWait: 10 * time.Second})
		var evicted atomic.Int32
		onEvict := func(err error) {
			if !errors.Is(err, relay.ErrNoPublisher) {
				t.Errorf("OnEvict(%v), want ErrNoPublisher", err)
			}
			evicted.Add(1)
		}
		early := subscribe(t, h, "live/early", relay.SubscribeOptions{OnEvict: onEvict})
		start := time.Now()
		_, err := early.Read(t.Context(), nil)
		waitErr(t, err, relay.ErrNoPublisher)
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("waited %v, want PlayWait", waited)
		}
		if _, ok := h.Stream("live/early"); ok {
			t.Error("stream entry kept after its only subscriber was evicted")
		}

		p := publish(t, h, key)
		p.WritePacket(video(0, true, 1))
		s := subscribe(t, h, key, relay.SubscribeOptions{OnEvict: onEvict})
		time.Sleep(time.Hour) // live: no PlayWait
		drain(t, s)
		p.Close()
		time.Sleep(9 * time.Second)
		fs, err := s.Read(t.Context(), nil)
		if err != nil || len(fs) != 1 || fs[0].Packet.Kind != relay.KindStreamEnd {
			t.Fatalf("Read after publisher left = %v, %v; want StreamEnd", describe(fs), err)
		}
		_, err = s.Read(t.Context(), nil)
		waitErr(t, err, relay.ErrNoPublisher)
		if n := evicted.Load(); n != 2 {
			t.Errorf("OnEvict called %d times, want 2", n)
		}
		if len(h.Streams()) != 0 {
			t.Errorf("streams left: %+v", h.Streams())
		}
	})
}

// TestPlayWaitResetByPublisher checks that a publisher arriving in time stops the
// PlayWait clock, and a later publisher gap starts a new one.
func TestPlayWaitResetByPublisher(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{PlayWait: 10 * time.Second})
		s := subscribe(t, h, key, relay.SubscribeOptions{})
		time.Sleep(8 * time.Second)
		p := publish(t, h, key)
		p.WritePacket(video(0, true, 1))
		time.Sleep(8 * time.Second)
		p.Close()
		time.Sleep(8 * time.Second)
		if got := drain(t, s); len(got) != 3 {
			t.Fatalf("frames %v, want start, keyframe, end", describe(got))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := s.Read(ctx, nil)
		waitErr(t, err, context.DeadlineExceeded)
		_, err = s.Read(t.Context(), nil)
		waitErr(t, err, relay.ErrNoPublisher)
	})
}

// TestTimestamps checks per-subscriber rebasing: near 0 at join, monotonic, negative
// and backward times clamped, payloads untouched.
func TestTimestamps(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	p.WritePacket(video(50000, true, 1))
	p.WritePacket(video(50040, false, 2))
	s1 := subscribe(t, h, key, relay.SubscribeOptions{})
	p.WritePacket(video(50080, true, 3))
	s2 := subscribe(t, h, key, relay.SubscribeOptions{}) // joins at the new keyframe
	p.WritePacket(audio(50070, 1))                       // slightly earlier than the video
	p.WritePacket(video(50120, false, 4))
	p.WritePacket(video(40000, false, 5)) // the publisher's clock steps back
	p.WritePacket(video(40040, false, 6))

	ts := func(fs []relay.Frame) []int64 {
		var out []int64
		for _, f := range fs {
			out = append(out, f.Timestamp)
		}
		return out
	}
	// start, K1, P2, K3, A, P4, P5, P6
	if got, want := ts(drain(t, s1)), []int64{0, 0, 40, 80, 80, 120, 120, 120}; !slices.Equal(got, want) {
		t.Errorf("s1 timestamps %v, want %v", got, want)
	}
	// start, K3, A, P4, P5, P6
	if got, want := ts(drain(t, s2)), []int64{0, 0, 0, 40, 40, 40}; !slices.Equal(got, want) {
		t.Errorf("s2 timestamps %v, want %v", got, want)
	}
}

// TestSharedPayload checks that subscribers get the published packet itself, not a copy.
func TestSharedPayload(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	s1 := subscribe(t, h, key, relay.SubscribeOptions{})
	s2 := subscribe(t, h, key, relay.SubscribeOptions{})
	pkt := video(0, true, 1)
	p.WritePacket(pkt)
	f1, f2 := drain(t, s1), drain(t, s2)
	if len(f1) != 2 || len(f2) != 2 {
		t.Fatalf("frames %v, %v", describe(f1), describe(f2))
	}
	if f1[1].Packet != pkt || f2[1].Packet != pkt || &f1[1].Packet.Payload[0] != &pkt.Payload[0] {
		t.Error("subscribers got a copy of the packet")
	}
}

// TestStreamRemoval checks that an entry lives exactly while it has a publisher or
// subscribers.
func TestStreamRemoval(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	p := publish(t, h, key)
	p.Close()
	if _, ok := h.Stream(key); !ok {
		t.Fatal("removed while subscribed")
	}
	s.Close()
	s.Close() // idempotent
	if _, ok := h.Stream(key); ok {
		t.Fatal("kept with neither publisher nor subscribers")
	}
	p = publish(t, h, key)
	s = subscribe(t, h, key, relay.SubscribeOptions{})
	s.Close()
	if _, ok := h.Stream(key); !ok {
		t.Fatal("removed while published")
	}
	p.Close()
	if n := len(h.Streams()); n != 0 {
		t.Fatalf("%d streams left", n)
	}
	_, err := s.Read(t.Context(), nil)
	waitErr(t, err, relay.ErrClosed)
}

// TestHubClose checks that Close ends every Read, refuses new work and calls
// OnEvict with ErrClosed.
func TestHubClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{})
		p := publish(t, h, key)
		var evicted atomic.Int32
		errs := make(chan error, 2)
		for _, k := range []string{key, "live/other"} {
			s := subscribe(t, h, k, relay.SubscribeOptions{OnEvict: func(err error) {
				if errors.Is(err, relay.ErrClosed) {
					evicted.Add(1)
				}
			}})
			go func() {
				for {
					if _, err := s.Read(t.Context(), make([]relay.Frame, 0, 4)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		synctest.Wait()
		h.Close()
		h.Close()
		for range 2 {
			waitErr(t, <-errs, relay.ErrClosed)
		}
		if evicted.Load() != 2 {
			t.Errorf("OnEvict(ErrClosed) called %d times, want 2", evicted.Load())
		}
		p.WritePacket(video(0, true, 1)) // no-op
		p.Close()
		if _, err := h.Publish(key, relay.PublisherInfo{}); !errors.Is(err, relay.ErrClosed) {
			t.Errorf("Publish after Close = %v", err)
		}
		if _, err := h.Subscribe(key, relay.SubscribeOptions{}); !errors.Is(err, relay.ErrClosed) {
			t.Errorf("Subscribe after Close = %v", err)
		}
		if len(h.Streams()) != 0 {
			t.Error("streams listed after Close")
		}
	})
}

// TestReadContext checks that a blocked Read honours ctx and a later Read still works.
func TestReadContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, relay.Config{})
		p := publish(t, h, key)
		s := subscribe(t, h, key, relay.SubscribeOptions{})
		drain(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error)
		go func() {
			_, err := s.Read(ctx, make([]relay.Frame, 0, 1))
			errc <- err
		}()
		synctest.Wait()
		cancel()
		waitErr(t, <-errc, context.Canceled)
		p.WritePacket(video(0, true, 1))
		if fs, err := s.Read(t.Context(), make([]relay.Frame, 0, 1)); err != nil || len(fs) != 1 {
			t.Errorf("Read = %v, %v", describe(fs), err)
		}
	})
}

// TestReadBatches checks that Read fills dst up to its capacity and appends.
func TestReadBatches(t *testing.T) {
	t.Parallel()
	h := newHub(t, relay.Config{})
	p := publish(t, h, key)
	s := subscribe(t, h, key, relay.SubscribeOptions{})
	for i := range 10 {
		p.WritePacket(audio(int64(i*20), uint64(i)))
	}
	dst := make([]relay.Frame, 1, 5)
	dst, err := s.Read(t.Context(), dst)
	if err != nil || len(dst) != 5 || dst[1].Packet.Kind != relay.KindStreamStart {
		t.Fatalf("Read = %d frames, %v; want 1 kept + 4", len(dst), err)
	}
	dst, err = s.Read(t.Context(), dst) // full: one frame appended
	if err != nil || len(dst) != 6 {
		t.Fatalf("Read into a full dst = %d frames, %v; want 6", len(dst), err)
	}
	if st := s.Stats(); st.Packets != 5 || st.Bytes != 4*8 {
		t.Errorf("stats %+v", st)
	}
}
