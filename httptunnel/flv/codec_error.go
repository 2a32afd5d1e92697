package flv

import (
	"errors"
	"strconv"
	"strings"
)

// ErrUnsupportedCodec is wrapped by every *CodecError: the stream carries a codec that
// browser playback (HTTP-FLV, HLS, the player page) cannot carry.
var ErrUnsupportedCodec = errors.New("flv: unsupported codec for browser playback")

// Codec names, as relay.MediaInfo spells them, of the only codecs browser playback
// carries.
const (
	CodecNameH264 = "H264"
	CodecNameAAC  = "AAC"
)

// CodecError names the codecs of a stream that browser playback cannot carry: anything
// but H.264 video and AAC audio. Its text is meant for the HTTP client (the body of a
// 415 answer), so it has no package prefix.
type CodecError struct {
	Video string // the video codec at fault, "" if the video is fine or unknown
	Audio string // the audio codec at fault, "" if the audio is fine or unknown
}

// Error names the codecs at fault and the ones that are supported.
func (e *CodecError) Error() string {
	var bad []string
	if e.Video != "" {
		bad = append(bad, "video "+e.Video)
	}
	if e.Audio != "" {
		bad = append(bad, "audio "+e.Audio)
	}
	return "unsupported codec (" + strings.Join(bad, ", ") + "): browser playback carries H.264 video and AAC audio only"
}

// Unwrap returns ErrUnsupportedCodec.
func (e *CodecError) Unwrap() error { return ErrUnsupportedCodec }

// CheckCodecs returns a *CodecError if video or audio, codec names as relay.MediaInfo
// spells them ("H264", "AAC", "H265", "MP3", ...), is known and not H.264 or AAC
// respectively; an empty name means not known yet and passes. It is the one codec
// check of every browser path: HTTP-FLV, HLS and the player page.
func CheckCodecs(video, audio string) error {
	var e CodecError
	if video != "" && video != CodecNameH264 {
		e.Video = video
	}
	if audio != "" && audio != CodecNameAAC {
		e.Audio = audio
	}
	if e == (CodecError{}) {
		return nil
	}
	return &e
}

// CheckVideo is CheckCodecs for the codec of a parsed VIDEODATA body.
func CheckVideo(v Video) error { return CheckCodecs(VideoCodecName(v), "") }

// CheckAudio is CheckCodecs for the codec of a parsed AUDIODATA body.
func CheckAudio(a Audio) error { return CheckCodecs("", AudioCodecName(a)) }

// VideoCodecName names the codec of a VIDEODATA body (E.4.3.1 CodecID): "H264" for
// AVC, "enhanced" for an Enhanced RTMP body, else a name or "codec id N".
func VideoCodecName(v Video) string {
	if v.Enhanced {
		return "enhanced"
	}
	switch v.CodecID {
	case CodecAVC:
		return CodecNameH264
	case 2:
		return "H263"
	case 3:
		return "screen video"
	case 4:
		return "VP6"
	case 5:
		return "VP6 alpha"
	case 6:
		return "screen video 2"
	case 12:
		return "H265"
	}
	return "codec id " + strconv.Itoa(int(v.CodecID))
}

// AudioCodecName names the codec of an AUDIODATA body (E.4.2.1 SoundFormat): "AAC",
// else a name or "sound format N".
func AudioCodecName(a Audio) string {
	switch a.Format {
	case SoundAAC:
		return CodecNameAAC
	case 2, 14:
		return "MP3"
	case 0, 3:
		return "PCM"
	case 1:
		return "ADPCM"
	case 4, 5, 6:
		return "Nellymoser"
	case 7:
		return "G.711 A-law"
	case 8:
		return "G.711 mu-law"
	case 11:
		return "Speex"
	}
	return "sound format " + strconv.Itoa(int(a.Format))
}
