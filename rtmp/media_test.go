package rtmp

import (
	"bytes"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/amf"
)

// mediaCases drives TestMediaPayloads and seeds the video and audio fuzzers: known
// audio and video payloads (FLV 10.1 E.4.2.1, E.4.3.1; enhanced RTMP v2) and how
// the relay classifies them.
var mediaCases = []struct {
	name      string
	typeID    uint8 // typeVideo or typeAudio
	payload   []byte
	keyframe  bool   // video only
	seqHeader bool   // videoFlags or audioSeqHeader
	codec     string // videoCodecName or audioCodecName
}{
	{"AVC keyframe sequence header", typeVideo, []byte{0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff}, true, true, "H264"},
	{"AVC keyframe NALU", typeVideo, []byte{0x17, 0x01, 0, 0, 0x28, 0, 0, 0, 1, 0x65}, true, false, "H264"},
	{"AVC inter frame", typeVideo, []byte{0x27, 0x01, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41}, false, false, "H264"},
	{"AVC end of sequence", typeVideo, []byte{0x17, 0x02, 0, 0, 0}, true, false, "H264"},
	{"AVC one byte", typeVideo, []byte{0x17}, true, false, "H264"},
	{"legacy HEVC sequence header", typeVideo, []byte{0x1c, 0x00, 0, 0, 0, 0x01}, true, true, "H265"},
	{"H263 inter frame", typeVideo, []byte{0x22, 0x00, 0x84}, false, false, "H263"},
	{"VP6 keyframe", typeVideo, []byte{0x14, 0x00, 0x00}, true, false, "VP6"},
	{"enhanced HEVC sequence start", typeVideo, append([]byte{0x90 | 0}, "hvc1\x01\x01\x60"...), true, true, "H265"},
	{"enhanced HEVC coded frames", typeVideo, append([]byte{0x90 | 1}, "hvc1\x00\x00\x00\x00\x00\x00\x01\x26"...), true, false, "H265"},
	{"enhanced AV1 inter frame", typeVideo, append([]byte{0xa0 | 3}, "av01\x12\x00"...), false, false, "AV1"},
	{"enhanced AV1 MPEG2-TS sequence start", typeVideo, append([]byte{0x90 | 5}, "av01\x81"...), true, true, "AV1"},
	{"enhanced VP9 sequence end", typeVideo, append([]byte{0x90 | 2}, "vp09"...), true, false, "VP9"},
	{"enhanced unknown FourCC", typeVideo, append([]byte{0xa0 | 1}, "abcd\x00"...), false, false, "abcd"},
	{"enhanced invalid UTF-8 FourCC", typeVideo, append([]byte{0xa0 | 1}, "\xff\xfeab"...), false, false, "??ab"},
	{"empty video", typeVideo, nil, false, false, ""},
	{"AAC sequence header", typeAudio, []byte{0xaf, 0x00, 0x12, 0x10}, false, true, "AAC"},
	{"AAC raw", typeAudio, []byte{0xaf, 0x01, 0x21, 0x00, 0x49}, false, false, "AAC"},
	{"AAC one byte", typeAudio, []byte{0xaf}, false, false, "AAC"},
	{"ExHeader audio sequence start", typeAudio, append([]byte{0x90}, "Opus\x4f\x70"...), false, true, "Opus"},
	{"ExHeader audio coded frames", typeAudio, append([]byte{0x91}, "mp4a\x21"...), false, false, "AAC"},
	{"ExHeader audio short", typeAudio, []byte{0x90, 'O'}, false, true, ""},
	{"MP3", typeAudio, []byte{0x2f, 0xff, 0xfb, 0x90}, false, false, "MP3"},
	{"Speex", typeAudio, []byte{0xb2, 0x00}, false, false, "Speex"},
	{"empty audio", typeAudio, nil, false, false, ""},
}

// metadataCases drives TestMetadataInfo and seeds FuzzMetadataInfo: onMetaData
// arguments (the AMF values after the name) and what the relay reads from them.
var metadataCases = []struct {
	name string
	vals []any
	want relay.MediaInfo
}{
	{"ffmpeg ECMA array", []any{amf.ECMAArray{
		"width": 1280.0, "height": 720.0, "framerate": 30.0, "videocodecid": 7.0,
		"audiocodecid": 10.0, "audiosamplerate": 48000.0, "stereo": true, "encoder": "Lavf61",
	}}, relay.MediaInfo{VideoCodec: "H264", AudioCodec: "AAC", Width: 1280, Height: 720, FPS: 30, SampleRate: 48000, Channels: 2}},
	{"OBS object mono MP3", []any{map[string]any{
		"width": 640.0, "height": 360.0, "framerate": 25.0, "videocodecid": 12.0,
		"audiocodecid": 2.0, "audiosamplerate": 44100.0, "stereo": false,
	}}, relay.MediaInfo{VideoCodec: "H265", AudioCodec: "MP3", Width: 640, Height: 360, FPS: 25, SampleRate: 44100, Channels: 1}},
	{"codec ids as FourCC strings", []any{amf.ECMAArray{"videocodecid": "avc1", "audiocodecid": "mp4a", "width": "1280"}}, relay.MediaInfo{}},
	{"out of range", []any{amf.ECMAArray{
		"width": -1.0, "height": 1e300, "framerate": math.Inf(1), "audiosamplerate": math.NaN(), "videocodecid": -7.0,
	}}, relay.MediaInfo{}},
	{"first object only", []any{"x", 1.0, nil, amf.ECMAArray{"width": 320.0}, amf.ECMAArray{"height": 240.0}}, relay.MediaInfo{Width: 320}},
	{"empty", nil, relay.MediaInfo{}},
}

func TestMediaPayloads(t *testing.T) {
	t.Parallel()
	for _, tc := range mediaCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.typeID == typeVideo {
				kf, sh := videoFlags(tc.payload)
				if kf != tc.keyframe || sh != tc.seqHeader {
					t.Errorf("videoFlags(% x) = %v, %v; want %v, %v", tc.payload, kf, sh, tc.keyframe, tc.seqHeader)
				}
				if got := videoCodecName(tc.payload); got != tc.codec {
					t.Errorf("videoCodecName(% x) = %q, want %q", tc.payload, got, tc.codec)
				}
				return
			}
			if got := audioSeqHeader(tc.payload); got != tc.seqHeader {
				t.Errorf("audioSeqHeader(% x) = %v, want %v", tc.payload, got, tc.seqHeader)
			}
			if got := audioCodecName(tc.payload); got != tc.codec {
				t.Errorf("audioCodecName(% x) = %q, want %q", tc.payload, got, tc.codec)
			}
		})
	}
}

func TestMetadataInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range metadataCases {
		t.Run(tc.name, func(t *testing.T) {
			mi := metadataInfo(tc.vals)
			if mi != tc.want {
				t.Errorf("metadataInfo(%v) = %+v, want %+v", tc.vals, mi, tc.want)
			}
			// What the onMetaData body decodes to must give the same answer.
			body, err := amf.Encode(tc.vals...)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := amf.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if got := metadataInfo(vals); got != mi {
				t.Errorf("after an AMF0 round trip: %+v, want %+v", got, mi)
			}
		})
	}
}

// addMediaSeeds adds the payloads of mediaCases of typeID to f.
func addMediaSeeds(f *testing.F, typeID uint8) {
	for _, tc := range mediaCases {
		if tc.typeID == typeID {
			f.Add(tc.payload)
		}
	}
}

// checkCodecName fails unless name is short, valid UTF-8 text.
func checkCodecName(t *testing.T, fn string, p []byte, name string) {
	t.Helper()
	if !utf8.ValidString(name) || len(name) > len("Speex") {
		t.Fatalf("%s(% x) = %q: want at most 5 bytes of valid UTF-8", fn, p, name)
	}
}

// FuzzVideoFlags checks videoFlags never panics, looks at the first two bytes only,
// and reports FLV's FrameType 1 as a keyframe.
func FuzzVideoFlags(f *testing.F) {
	addMediaSeeds(f, typeVideo)
	f.Fuzz(func(t *testing.T, p []byte) {
		orig := bytes.Clone(p)
		kf, sh := videoFlags(p)
		if !bytes.Equal(p, orig) {
			t.Fatalf("videoFlags modified its input")
		}
		if len(p) == 0 {
			if kf || sh {
				t.Fatalf("videoFlags(empty) = %v, %v", kf, sh)
			}
			return
		}
		if want := (p[0]>>4)&7 == 1; kf != want {
			t.Fatalf("videoFlags(% x): keyframe %v, want %v", p, kf, want)
		}
		// Only the first two bytes matter, and for an enhanced header whether its
		// FourCC is there (the first five).
		if kf2, sh2 := videoFlags(p[:min(len(p), 5)]); kf2 != kf || sh2 != sh {
			t.Fatalf("videoFlags(% x) = %v, %v but its first five bytes give %v, %v", p, kf, sh, kf2, sh2)
		}
		if sh && p[0]&0x80 != 0 && len(p) < 5 {
			t.Fatalf("videoFlags(% x): enhanced sequence header without a FourCC", p)
		}
		if sh && p[0]&0x80 == 0 && (len(p) < 2 || p[1] != 0) {
			t.Fatalf("videoFlags(% x): legacy sequence header without AVCPacketType 0", p)
		}
	})
}

// FuzzVideoCodecName checks videoCodecName never panics and returns a short name;
// for an enhanced header it names the FourCC or nothing.
func FuzzVideoCodecName(f *testing.F) {
	addMediaSeeds(f, typeVideo)
	f.Fuzz(func(t *testing.T, p []byte) {
		name := videoCodecName(p)
		checkCodecName(t, "videoCodecName", p, name)
		if len(p) > 0 && p[0]&0x80 != 0 {
			// The low nibble of an enhanced header is a packet type, not a codec id.
			if len(p) < 5 && name != "" {
				t.Fatalf("videoCodecName(% x) = %q for an enhanced header without a FourCC", p, name)
			}
			if len(p) >= 5 && name != fourCCName(p[1:5]) {
				t.Fatalf("videoCodecName(% x) = %q, want the FourCC's %q", p, name, fourCCName(p[1:5]))
			}
		}
	})
}

// FuzzAudioSeqHeader checks audioSeqHeader never panics and only reports AAC and
// ExHeader sequence headers.
func FuzzAudioSeqHeader(f *testing.F) {
	addMediaSeeds(f, typeAudio)
	f.Fuzz(func(t *testing.T, p []byte) {
		sh := audioSeqHeader(p)
		if !sh {
			return
		}
		switch {
		case len(p) < 2:
			t.Fatalf("audioSeqHeader(% x) on a payload of %d bytes", p, len(p))
		case p[0]>>4 == 10 && p[1] == 0, p[0]>>4 == 9 && p[0]&0x0F == 0:
		default:
			t.Fatalf("audioSeqHeader(% x) = true", p)
		}
	})
}

// FuzzAudioCodecName checks audioCodecName never panics and returns a short name.
func FuzzAudioCodecName(f *testing.F) {
	addMediaSeeds(f, typeAudio)
	f.Fuzz(func(t *testing.T, p []byte) {
		name := audioCodecName(p)
		checkCodecName(t, "audioCodecName", p, name)
		if len(p) > 0 && p[0]>>4 == 9 && len(p) >= 5 && name != fourCCName(p[1:5]) {
			t.Fatalf("audioCodecName(% x) = %q, want the FourCC's %q", p, name, fourCCName(p[1:5]))
		}
	})
}

// FuzzMetadataInfo decodes arbitrary bytes as AMF0 and checks metadataInfo never
// panics and reports sane values: non-negative, bounded, no NaN, known codec names.
func FuzzMetadataInfo(f *testing.F) {
	for _, tc := range metadataCases {
		b, err := amf.Encode(tc.vals...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		vals, _ := amf.Decode(p) // what decoded before an error, as onData would not get
		mi := metadataInfo(vals)
		const limit = 1e6
		if mi.Width < 0 || mi.Width > limit || mi.Height < 0 || mi.Height > limit ||
			mi.SampleRate < 0 || mi.SampleRate > limit || !(mi.FPS >= 0 && mi.FPS <= limit) {
			t.Fatalf("metadataInfo(%v) = %+v: out of range", vals, mi)
		}
		if mi.Channels != 0 && mi.Channels != 1 && mi.Channels != 2 {
			t.Fatalf("metadataInfo(%v): %d channels", vals, mi.Channels)
		}
		switch mi.VideoCodec {
		case "", "H264", "H265":
		default:
			t.Fatalf("metadataInfo(%v): video codec %q", vals, mi.VideoCodec)
		}
		switch mi.AudioCodec {
		case "", "AAC", "MP3":
		default:
			t.Fatalf("metadataInfo(%v): audio codec %q", vals, mi.AudioCodec)
		}
	})
}
