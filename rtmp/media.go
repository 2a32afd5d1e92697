package rtmp

import (
	"github.com/mtrelay/mtrelay/relay"
)

// RTMP message type IDs (RTMP 1.0 §5.4, §7.1).
const (
	typeSetChunkSize   = 1
	typeAbort          = 2
	typeAck            = 3
	typeUserControl    = 4
	typeWindowAckSize  = 5
	typeSetPeerBW      = 6
	typeAudio          = 8
	typeVideo          = 9
	typeDataAMF3       = 15
	typeSharedObjAMF3  = 16
	typeCommandAMF3    = 17
	typeDataAMF0       = 18
	typeSharedObjAMF0  = 19
	typeCommandAMF0    = 20
	typeAggregate      = 22
	userControlBegin   = 0
	userControlEOF     = 1
	userControlBufLen  = 3
	userControlPingReq = 6
	userControlPingRes = 7
)

// videoFlags classifies a video message payload (FLV 10.1 E.4.3.1 VIDEODATA, and the
// enhanced RTMP v2 ExVideoTagHeader): keyframe and codec-configuration record.
func videoFlags(p []byte) (keyframe, seqHeader bool) {
	if len(p) == 0 {
		return false, false
	}
	b0 := p[0]
	frameType := (b0 >> 4) & 0x07
	keyframe = frameType == 1
	if b0&0x80 != 0 { // enhanced: low nibble is the packet type, then a FourCC
		pt := b0 & 0x0F
		// SequenceStart (0) and MPEG2TSSequenceStart (5) configure the decoder; one
		// without its FourCC configures nothing.
		return keyframe, (pt == 0 || pt == 5) && len(p) >= 5
	}
	codec := b0 & 0x0F
	if (codec == 7 || codec == 12 || codec == 13) && len(p) > 1 { // AVC, HEVC (ext), AV1 (ext)
		seqHeader = p[1] == 0
	}
	return keyframe, seqHeader
}

// audioSeqHeader reports whether an audio payload is a codec configuration record
// (FLV 10.1 E.4.2.1 AACPacketType 0, or an enhanced audio SequenceStart).
func audioSeqHeader(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch p[0] >> 4 {
	case 10: // AAC
		return p[1] == 0
	case 9: // ExHeader
		return p[0]&0x0F == 0
	}
	return false
}

// videoCodecName names the codec of a video payload.
func videoCodecName(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if p[0]&0x80 != 0 {
		if len(p) >= 5 {
			return fourCCName(p[1:5])
		}
		return ""
	}
	switch p[0] & 0x0F {
	case 2:
		return "H263"
	case 4:
		return "VP6"
	case 7:
		return "H264"
	case 12:
		return "H265"
	}
	return ""
}

// audioCodecName names the codec of an audio payload.
func audioCodecName(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	switch p[0] >> 4 {
	case 2, 14:
		return "MP3"
	case 10:
		return "AAC"
	case 11:
		return "Speex"
	case 9:
		if len(p) >= 5 {
			return fourCCName(p[1:5])
		}
	}
	return ""
}

func fourCCName(b []byte) string {
	switch string(b) {
	case "avc1":
		return "H264"
	case "hvc1":
		return "H265"
	case "av01":
		return "AV1"
	case "vp09":
		return "VP9"
	case "mp4a":
		return "AAC"
	case "Opus":
		return "Opus"
	}
	// An unknown FourCC goes to stats and logs: printable ASCII only.
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// metadataInfo reads width/height/framerate/codec ids/sample rate/channels from an
// onMetaData body (the AMF values after the "onMetaData" name).
func metadataInfo(vals []any) relay.MediaInfo {
	var mi relay.MediaInfo
	for _, v := range vals {
		props := amfProps(v)
		if props == nil {
			continue
		}
		num := func(k string) float64 {
			f := amfNum(props[k])
			if f != f || f < 0 || f > 1e6 {
				return 0
			}
			return f
		}
		mi.Width = int(num("width"))
		mi.Height = int(num("height"))
		mi.FPS = num("framerate")
		mi.SampleRate = int(num("audiosamplerate"))
		if st, ok := props["stereo"].(bool); ok {
			mi.Channels = 1
			if st {
				mi.Channels = 2
			}
		}
		switch num("videocodecid") {
		case 7:
			mi.VideoCodec = "H264"
		case 12:
			mi.VideoCodec = "H265"
		}
		switch num("audiocodecid") {
		case 10:
			mi.AudioCodec = "AAC"
		case 2:
			mi.AudioCodec = "MP3"
		}
		break
	}
	return mi
}
