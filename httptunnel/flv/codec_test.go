package flv

import (
	"bytes"
	"reflect"
	"testing"
)

var avcCases = []struct {
	name string
	cfg  AVCConfig
}{
	{"main", AVCConfig{Profile: 0x4d, Level: 0x1e, LengthSize: 4, SPS: [][]byte{{0x67, 0x4d, 0, 0x1e}}, PPS: [][]byte{{0x68, 0xee, 0x3c, 0x80}}}},
	{"two-sps", AVCConfig{Profile: 0x64, Compat: 0, Level: 0x28, LengthSize: 2, SPS: [][]byte{{0x67, 1}, {0x67, 2}}, PPS: [][]byte{{0x68}}}},
	{"len1", AVCConfig{Profile: 0x42, Level: 0x0d, LengthSize: 1, SPS: [][]byte{{0x67}}, PPS: [][]byte{{0x68}, {0x68, 1}}}},
}

func TestAVCConfigRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range avcCases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.cfg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseAVCConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.cfg) {
				t.Fatalf("got %+v, want %+v", got, c.cfg)
			}
		})
	}
}

func TestParseAVCConfigErrors(t *testing.T) {
	t.Parallel()
	good, _ := avcCases[0].cfg.Marshal()
	for name, in := range map[string][]byte{
		"short":     good[:4],
		"version":   append([]byte{2}, good[1:]...),
		"sps-len":   good[:8],
		"no-pps":    good[:len(good)-6],
		"pps-trunc": good[:len(good)-1],
	} {
		if _, err := ParseAVCConfig(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVideoAudioRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []Video{
		{Keyframe: true, CodecID: CodecAVC, PacketType: AVCNALU, CTS: 80, Data: []byte{0, 0, 0, 1, 0x65}},
		{CodecID: CodecAVC, PacketType: AVCNALU, CTS: -40, Data: []byte{0, 0, 0, 1, 0x41}},
		{CodecID: 2, Data: []byte{1, 2}},
	} {
		got, err := ParseVideo(AppendVideo(nil, v))
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("video %+v: got %+v, %v", v, got, err)
		}
	}
	for _, a := range []Audio{
		{Format: SoundAAC, Flags: 0xF, PacketType: AACRaw, Data: []byte{0x21}},
		{Format: 2, Flags: 0xE, Data: []byte{0xff}},
	} {
		got, err := ParseAudio(AppendAudio(nil, a))
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("audio %+v: got %+v, %v", a, got, err)
		}
	}
}

func TestSplitAVCC(t *testing.T) {
	t.Parallel()
	nalus := [][]byte{{0x09, 0xf0}, {0x65, 1, 2, 3}}
	b := JoinAVCC(nil, nalus)
	got, err := SplitAVCC(nil, b, 4)
	if err != nil || !reflect.DeepEqual(got, nalus) {
		t.Fatalf("got %x, %v", got, err)
	}
	if _, err := SplitAVCC(nil, b[:len(b)-1], 4); err == nil {
		t.Fatal("truncated: no error")
	}
}

func FuzzParseAVCConfig(f *testing.F) {
	for _, c := range avcCases {
		b, _ := c.cfg.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseAVCConfig(in)
		if err != nil {
			return
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed %+v but cannot marshal it: %v", c, err)
		}
		c2, err := ParseAVCConfig(b)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %+v -> %+v, %v", c, c2, err)
		}
	})
}

func FuzzParseVideo(f *testing.F) {
	f.Add([]byte{0x17, 1, 0, 0, 0x28, 0, 0, 0, 1, 0x65})
	f.Add([]byte{0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41})
	f.Add([]byte{0x22, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := ParseVideo(in)
		if err != nil || v.Enhanced {
			return
		}
		if !bytes.Equal(AppendVideo(nil, v)[1:], in[1:]) {
			t.Fatalf("round trip changed % x", in)
		}
		// Whatever splits must join back to the same bytes (empty units are dropped,
		// so compare only when there were none).
		nalus, err := SplitAVCC(nil, v.Data, 4)
		if err == nil && len(JoinAVCC(nil, nalus)) == len(v.Data) && !bytes.Equal(JoinAVCC(nil, nalus), v.Data) {
			t.Fatalf("AVCC round trip changed % x", v.Data)
		}
	})
}
