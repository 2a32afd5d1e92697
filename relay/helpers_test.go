package relay_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/rs/zerolog"
)

// newHub returns a hub that logs to t and is closed when the test ends.
func newHub(t testing.TB, cfg relay.Config) *relay.Hub {
	t.Helper()
	h, err := relay.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func publish(t testing.TB, h *relay.Hub, key string) *relay.Publisher {
	t.Helper()
	p, err := h.Publish(key, relay.PublisherInfo{Protocol: "rtmp", Remote: "127.0.0.1:1"})
	if err != nil {
		t.Fatalf("Publish(%q): %v", key, err)
	}
	return p
}

func subscribe(t testing.TB, h *relay.Hub, key string, opts relay.SubscribeOptions) *relay.Subscriber {
	t.Helper()
	if opts.Protocol == "" {
		opts.Protocol = "rtmp"
	}
	s, err := h.Subscribe(key, opts)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", key, err)
	}
	t.Cleanup(s.Close)
	return s
}

// Packet constructors. Media payloads carry a frame number so that tests can
// check which frames arrived and that video stays decodable.

func vseq(ts int64, cfg byte) *relay.Packet {
	return &relay.Packet{Kind: relay.KindVideo, Timestamp: ts, Keyframe: true, SeqHeader: true, Payload: []byte{0x17, 0, cfg}}
}

func aseq(ts int64, cfg byte) *relay.Packet {
	return &relay.Packet{Kind: relay.KindAudio, Timestamp: ts, SeqHeader: true, Payload: []byte{0xaf, 0, cfg}}
}

func meta(ts int64) *relay.Packet {
	return &relay.Packet{Kind: relay.KindMetadata, Timestamp: ts, Payload: []byte("onMetaData")}
}

func video(ts int64, key bool, n uint64) *relay.Packet {
	return &relay.Packet{Kind: relay.KindVideo, Timestamp: ts, Keyframe: key, Payload: binary.BigEndian.AppendUint64(make([]byte, 0, 16), n)}
}

func audio(ts int64, n uint64) *relay.Packet {
	return &relay.Packet{Kind: relay.KindAudio, Timestamp: ts, Payload: binary.BigEndian.AppendUint64(make([]byte, 0, 16), n)}
}

// frameNo returns the frame number a test packet carries.
func frameNo(p *relay.Packet) uint64 { return binary.BigEndian.Uint64(p.Payload) }

// drain reads every queued frame without blocking.
func drain(t testing.TB, s *relay.Subscriber) []relay.Frame {
	t.Helper()
	var out []relay.Frame
	for s.Queued() > 0 {
		var err error
		out, err = s.Read(t.Context(), out)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	return out
}

// desc is a compact description of a frame for comparisons: kind, flags, number.
type desc struct {
	Kind     relay.Kind
	Key, Seq bool
	N        uint64
}

func describe(fs []relay.Frame) []desc {
	out := make([]desc, 0, len(fs))
	for _, f := range fs {
		d := desc{Kind: f.Packet.Kind, Key: f.Packet.Keyframe, Seq: f.Packet.SeqHeader}
		if (d.Kind == relay.KindAudio || d.Kind == relay.KindVideo) && !d.Seq {
			d.N = frameNo(f.Packet)
		}
		out = append(out, d)
	}
	return out
}

// checker verifies the invariants every subscriber must see: non-decreasing
// timestamps starting near 0; within one publisher session, the first video frame is
// a keyframe and every other video frame follows the previous one (decodable).
type checker struct {
	frames   int
	lastTS   int64
	inVideo  bool   // a keyframe was seen in this session and video is continuous since
	lastVid  uint64 // number of the previous video frame
	sessions int
}

func (c *checker) check(t testing.TB, f relay.Frame) {
	t.Helper()
	if c.frames == 0 && f.Timestamp > 1000 {
		t.Errorf("first frame at %d ms, want near 0", f.Timestamp)
	}
	if f.Timestamp < c.lastTS {
		t.Errorf("timestamp went back: %d after %d", f.Timestamp, c.lastTS)
	}
	if f.Timestamp < 0 {
		t.Errorf("negative timestamp %d", f.Timestamp)
	}
	c.lastTS = f.Timestamp
	c.frames++
	p := f.Packet
	switch {
	case p.Kind == relay.KindStreamStart:
		c.sessions++
		c.inVideo = false
	case p.Kind == relay.KindVideo && !p.SeqHeader:
		n := frameNo(p)
		switch {
		case p.Keyframe:
			c.inVideo = true
		case !c.inVideo:
			t.Errorf("video frame %d before any keyframe of the session", n)
		case n != c.lastVid+1:
			t.Errorf("video frame %d follows %d: hole without a keyframe", n, c.lastVid)
		}
		c.lastVid = n
	}
}

// waitErr fails unless err is want.
func waitErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func zeroLog() zerolog.Logger { return zerolog.Nop() }
