package vod

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/httptunnel/flv/flvtest"
	"github.com/mtrelay/mtrelay/relay"
)

func openFixture(t testing.TB) *Reader {
	t.Helper()
	b, err := os.ReadFile(flvtest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

func readAll(t testing.TB, rd *Reader) []*relay.Packet {
	t.Helper()
	var out []*relay.Packet
	for {
		p, err := rd.ReadPacket()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

// TestReaderFixture reads the whole fixture and compares it with the fixture's tags
// as flvtest reads them: same packets, in the same order, with the same flags and
// timestamps (the fixture starts at 0), metadata and sequence headers first.
func TestReaderFixture(t *testing.T) {
	t.Parallel()
	want := flvtest.FixturePackets(t)
	rd := openFixture(t)
	got := readAll(t, rd)
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	if got[0].Kind != relay.KindMetadata || !got[1].SeqHeader || !got[2].SeqHeader {
		t.Errorf("first packets: %v %v %v, want metadata and two sequence headers", got[0].Kind, got[1].Kind, got[2].Kind)
	}
	// The fixture already starts with them, so the order is the file's.
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Timestamp != w.Timestamp || g.Keyframe != w.Keyframe || g.SeqHeader != w.SeqHeader || !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("packet %d: got %v ts=%d key=%v seq=%v len=%d, want %v ts=%d key=%v seq=%v len=%d", i,
				g.Kind, g.Timestamp, g.Keyframe, g.SeqHeader, len(g.Payload), w.Kind, w.Timestamp, w.Keyframe, w.SeqHeader, len(w.Payload))
		}
	}
	var wantA, wantV, keys int
	for _, p := range want {
		switch {
		case p.SeqHeader || p.Kind == relay.KindMetadata:
		case p.Kind == relay.KindAudio:
			wantA++
		case p.Kind == relay.KindVideo:
			wantV++
			if p.Keyframe && !endOfSequence(p.Payload) {
				keys++
			}
		}
	}
	if a, v := rd.Frames(); a != wantA || v != wantV {
		t.Errorf("Frames() = %d audio %d video, want %d %d", a, v, wantA, wantV)
	}
	if wantV != 251 || keys != 5 {
		t.Errorf("fixture has %d video frames and %d keyframes, want 251 (250 and the end of sequence) and 5 (testdata/gen.sh)", wantV, keys)
	}
	kf := rd.Keyframes()
	if len(kf) != keys {
		t.Fatalf("index has %d keyframes, want %d", len(kf), keys)
	}
	for i, k := range kf {
		if k.Time != int64(i)*2000 {
			t.Errorf("keyframe %d at %d ms, want %d", i, k.Time, i*2000)
		}
	}
	if d := rd.Duration(); d < 9900 || d > 10100 {
		t.Errorf("Duration() = %d, want about 10000", d)
	}
	if !rd.HasAudio() || !rd.HasVideo() {
		t.Error("HasAudio/HasVideo false")
	}
}

// TestReaderSeek seeks to the keyframe at or before a time and checks what follows:
// metadata and both sequence headers at the keyframe's time, then that keyframe.
func TestReaderSeek(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ms   int64
		want int64
	}{
		{"start", 0, 0},
		{"before first gop end", 1999, 0},
		{"exact keyframe", 2000, 2000},
		{"middle", 5000, 4000},
		{"last keyframe", 8000, 8000},
		{"past the end", 60000, 8000},
		{"negative", -5, 0},
	}
	rd := openFixture(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := rd.SeekTo(c.ms); got != c.want {
				t.Fatalf("SeekTo(%d) = %d, want %d", c.ms, got, c.want)
			}
			var first []*relay.Packet
			for len(first) < 4 {
				p, err := rd.ReadPacket()
				if err != nil {
					t.Fatal(err)
				}
				first = append(first, p)
			}
			if first[0].Kind != relay.KindMetadata || !first[1].SeqHeader || !first[2].SeqHeader {
				t.Fatalf("after seek: %v %v %v, want metadata and sequence headers", first[0].Kind, first[1].Kind, first[2].Kind)
			}
			for _, p := range first[:3] {
				if p.Timestamp != c.want {
					t.Errorf("preamble %v at %d, want %d", p.Kind, p.Timestamp, c.want)
				}
			}
			if p := first[3]; p.Kind != relay.KindVideo || !p.Keyframe || p.Timestamp != c.want {
				t.Errorf("first frame after seek: %v key=%v ts=%d, want a keyframe at %d", p.Kind, p.Keyframe, p.Timestamp, c.want)
			}
		})
	}
	// Reading from a seek to the end returns every later frame once.
	rd.SeekTo(4000)
	got := readAll(t, rd)
	var v int
	for _, p := range got {
		if p.Kind == relay.KindVideo && !p.SeqHeader {
			v++
		}
	}
	if v != 151 {
		t.Errorf("from 4000 ms: %d video frames, want 151 (150 and the end of sequence)", v)
	}
}

// TestReaderTruncated cuts the fixture in the middle of a tag: the reader plays up to
// the cut (a recording still being written) and ends with io.EOF.
func TestReaderTruncated(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(flvtest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{13, 100, len(b) / 2, len(b) - 3} {
		rd, err := NewReader(bytes.NewReader(b[:n]), int64(n))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got := readAll(t, rd)
		if n == len(b)/2 && len(got) < 100 {
			t.Errorf("%d bytes: only %d packets", n, len(got))
		}
	}
}

func TestReaderBadHeader(t *testing.T) {
	t.Parallel()
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short":          []byte("FLV"),
		"no signature":   []byte("XLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"),
		"offset too low": []byte("FLV\x01\x05\x00\x00\x00\x02\x00\x00\x00\x00"),
		"offset huge":    []byte("FLV\x01\x05\x7f\x00\x00\x00\x00\x00\x00\x00"),
	} {
		if _, err := NewReader(bytes.NewReader(b), int64(len(b))); !errors.Is(err, flv.ErrInvalid) {
			t.Errorf("%s: err %v, want flv.ErrInvalid", name, err)
		}
	}
}

// appendTags writes packets as an FLV file (what a reader's output must round-trip to).
func appendTags(pkts []*relay.Packet) []byte {
	out := flv.Header(true, true)
	var b flv.Batch
	for _, p := range pkts {
		typ := flv.TagAudio
		switch p.Kind {
		case relay.KindVideo:
			typ = flv.TagVideo
		case relay.KindMetadata:
			typ = flv.TagScript
		}
		if err := b.Add(typ, p.Timestamp, p.Payload); err != nil {
			panic(err)
		}
	}
	var w bytes.Buffer
	b.WriteTo(&w)
	return append(out, w.Bytes()...)
}

// FuzzReader feeds arbitrary bytes to NewReader, reads every packet, seeks and reads
// again: no panic, no endless loop, and what it read round-trips through an FLV file
// written from it.
func FuzzReader(f *testing.F) {
	b, err := os.ReadFile(flvtest.FixturePath(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:4096])
	f.Add(b[:200])
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x12\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x02\x00\x0aonMe"))
	f.Add(appendTags([]*relay.Packet{{Kind: relay.KindVideo, Timestamp: 40, Payload: []byte{0x17, 0, 0, 0, 0}}, {Kind: relay.KindAudio, Timestamp: 0, Payload: []byte{0xaf, 1, 2}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var pkts []*relay.Packet
		for range 100000 {
			p, err := rd.ReadPacket()
			if err != nil {
				break
			}
			pkts = append(pkts, p)
		}
		for _, ms := range []int64{-1, 0, 1000, rd.Duration(), 1 << 40} {
			rd.SeekTo(ms)
			for range 100 {
				if _, err := rd.ReadPacket(); err != nil {
					break
				}
			}
		}
		// Round trip: the packets written as a file read back the same (after the
		// preamble, which the written file has first anyway).
		again, err := NewReader(bytes.NewReader(appendTags(pkts)), int64(len(appendTags(pkts))))
		if err != nil {
			t.Fatalf("re-reading %d packets: %v", len(pkts), err)
		}
		got := readAll(t, again)
		if len(got) != len(pkts) {
			t.Fatalf("round trip: %d packets, want %d", len(got), len(pkts))
		}
	})
}
