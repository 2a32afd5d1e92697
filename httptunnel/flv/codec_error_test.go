package flv

import (
	"errors"
	"testing"
)

// TestCheckCodecs: only known codecs other than H.264 and AAC fail, as *CodecError
// wrapping ErrUnsupportedCodec, with a message naming them and the supported ones.
func TestCheckCodecs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, video, audio string
		bad                CodecError // zero: no error
	}{
		{"unknown", "", "", CodecError{}},
		{"H264 AAC", "H264", "AAC", CodecError{}},
		{"H264 only", "H264", "", CodecError{}},
		{"H265", "H265", "AAC", CodecError{Video: "H265"}},
		{"MP3", "", "MP3", CodecError{Audio: "MP3"}},
		{"both", "VP6", "MP3", CodecError{Video: "VP6", Audio: "MP3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCodecs(tc.video, tc.audio)
			if tc.bad == (CodecError{}) {
				if err != nil {
					t.Fatalf("CheckCodecs(%q, %q) = %v, want nil", tc.video, tc.audio, err)
				}
				return
			}
			ce, ok := errors.AsType[*CodecError](err)
			if !ok || *ce != tc.bad || !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("CheckCodecs(%q, %q) = %v, want %+v wrapping ErrUnsupportedCodec", tc.video, tc.audio, err, tc.bad)
			}
		})
	}
	if err := CheckVideo(Video{Enhanced: true}); err == nil {
		t.Error("CheckVideo(enhanced) passed")
	}
	if err := CheckVideo(Video{CodecID: CodecAVC}); err != nil {
		t.Errorf("CheckVideo(AVC) = %v", err)
	}
	if err := CheckAudio(Audio{Format: 2}); err == nil || err.Error() != "unsupported codec (audio MP3): browser playback carries H.264 video and AAC audio only" {
		t.Errorf("CheckAudio(MP3) = %v", err)
	}
	if err := CheckAudio(Audio{Format: SoundAAC}); err != nil {
		t.Errorf("CheckAudio(AAC) = %v", err)
	}
}
