package flv

import (
	"bytes"
	"testing"
)

// audioCases are AUDIODATA bodies (FLV 10.1 E.4.2.1); they seed FuzzParseAudio.
var audioCases = []struct {
	name string
	in   []byte
	want Audio // when ok
	ok   bool
}{
	{"AAC sequence header", []byte{0xaf, AACSeqHeader, 0x12, 0x10}, Audio{Format: SoundAAC, Flags: 0xf, PacketType: AACSeqHeader, Data: []byte{0x12, 0x10}}, true},
	{"AAC raw", []byte{0xaf, AACRaw, 0x21, 0x00, 0x49}, Audio{Format: SoundAAC, Flags: 0xf, PacketType: AACRaw, Data: []byte{0x21, 0x00, 0x49}}, true},
	{"AAC header only", []byte{0xae, AACRaw}, Audio{Format: SoundAAC, Flags: 0xe, PacketType: AACRaw, Data: []byte{}}, true},
	{"MP3", []byte{0x2f, 0xff, 0xfb}, Audio{Format: 2, Flags: 0xf, Data: []byte{0xff, 0xfb}}, true},
	{"ExHeader", []byte{0x90, 'O', 'p', 'u', 's'}, Audio{Format: 9, Data: []byte("Opus")}, true},
	{"AAC one byte", []byte{0xaf}, Audio{}, false},
	{"empty", nil, Audio{}, false},
}

func TestParseAudio(t *testing.T) {
	t.Parallel()
	for _, tc := range audioCases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAudio(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseAudio(% x) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if a.Format != tc.want.Format || a.Flags != tc.want.Flags || a.PacketType != tc.want.PacketType || !bytes.Equal(a.Data, tc.want.Data) {
				t.Errorf("ParseAudio(% x) = %+v, want %+v", tc.in, a, tc.want)
			}
		})
	}
}

// FuzzParseAudio checks ParseAudio never panics, that what it parses encodes back to
// the same bytes with AppendAudio, and that Data aliases the input.
func FuzzParseAudio(f *testing.F) {
	for _, tc := range audioCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := ParseAudio(in)
		if err != nil {
			if len(in) >= 2 || (len(in) == 1 && in[0]>>4 != SoundAAC) {
				t.Fatalf("ParseAudio(% x): %v", in, err)
			}
			return
		}
		if got := AppendAudio(nil, a); !bytes.Equal(got, in) {
			t.Fatalf("ParseAudio(% x) = %+v, which encodes to % x", in, a, got)
		}
		if len(a.Data) > 0 && &a.Data[len(a.Data)-1] != &in[len(in)-1] {
			t.Fatalf("ParseAudio(% x): Data does not alias the input", in)
		}
	})
}
