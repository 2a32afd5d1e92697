package flv

import (
	"encoding/binary"
	"fmt"
)

// Video codec ids (FLV 10.1 E.4.3.1 CodecID) and AVCPacketType values.
const (
	CodecAVC = 7
	// AVCSeqHeader is the AVCPacketType of an AVCDecoderConfigurationRecord.
	AVCSeqHeader = 0
	// AVCNALU is the AVCPacketType of one access unit of NAL units.
	AVCNALU = 1
	// AVCEndOfSeq is the AVCPacketType of the end of a sequence.
	AVCEndOfSeq = 2
)

// Audio formats (E.4.2.1 SoundFormat) and AACPacketType values.
const (
	SoundAAC = 10
	// AACSeqHeader is the AACPacketType of an AudioSpecificConfig.
	AACSeqHeader = 0
	// AACRaw is the AACPacketType of a raw AAC frame.
	AACRaw = 1
)

// Video is a parsed VIDEODATA body (E.4.3.1). Enhanced RTMP bodies (the top bit of
// byte 0 set) are reported with Enhanced and no other field.
type Video struct {
	Enhanced   bool
	Keyframe   bool  // FrameType 1
	CodecID    uint8 // 7 = AVC
	PacketType uint8 // AVC only: AVCSeqHeader, AVCNALU, AVCEndOfSeq
	CTS        int32 // AVC only: composition time offset in ms (PTS - DTS)
	Data       []byte
}

// ParseVideo parses a VIDEODATA tag body. For AVC, Data is the
// AVCDecoderConfigurationRecord or the NAL units; for other codecs, Data is what
// follows byte 0. Data aliases p.
func ParseVideo(p []byte) (Video, error) {
	if len(p) < 1 {
		return Video{}, fmt.Errorf("%w: empty video tag", ErrInvalid)
	}
	if p[0]&0x80 != 0 {
		return Video{Enhanced: true, Keyframe: (p[0]>>4)&7 == 1, Data: p[1:]}, nil
	}
	v := Video{Keyframe: p[0]>>4 == 1, CodecID: p[0] & 0x0F}
	if v.CodecID != CodecAVC {
		v.Data = p[1:]
		return v, nil
	}
	if len(p) < 5 {
		return Video{}, fmt.Errorf("%w: AVC video tag of %d bytes", ErrInvalid, len(p))
	}
	v.PacketType = p[1]
	cts := int32(uint32(p[2])<<16 | uint32(p[3])<<8 | uint32(p[4]))
	v.CTS = cts << 8 >> 8 // SI24
	v.Data = p[5:]
	return v, nil
}

// AppendVideo appends the VIDEODATA body for v (not enhanced) to dst.
func AppendVideo(dst []byte, v Video) []byte {
	ft := byte(2)
	if v.Keyframe {
		ft = 1
	}
	dst = append(dst, ft<<4|v.CodecID&0x0F)
	if v.CodecID == CodecAVC {
		c := uint32(v.CTS)
		dst = append(dst, v.PacketType, byte(c>>16), byte(c>>8), byte(c))
	}
	return append(dst, v.Data...)
}

// Audio is a parsed AUDIODATA body (E.4.2.1).
type Audio struct {
	Format     uint8 // SoundFormat: 10 = AAC
	Flags      uint8 // the low nibble of byte 0: rate, size, channels
	PacketType uint8 // AAC only: AACSeqHeader or AACRaw
	Data       []byte
}

// ParseAudio parses an AUDIODATA tag body. Data aliases p.
func ParseAudio(p []byte) (Audio, error) {
	if len(p) < 1 {
		return Audio{}, fmt.Errorf("%w: empty audio tag", ErrInvalid)
	}
	a := Audio{Format: p[0] >> 4, Flags: p[0] & 0x0F}
	if a.Format != SoundAAC {
		a.Data = p[1:]
		return a, nil
	}
	if len(p) < 2 {
		return Audio{}, fmt.Errorf("%w: AAC audio tag of 1 byte", ErrInvalid)
	}
	a.PacketType = p[1]
	a.Data = p[2:]
	return a, nil
}

// AppendAudio appends the AUDIODATA body for a to dst.
func AppendAudio(dst []byte, a Audio) []byte {
	dst = append(dst, a.Format<<4|a.Flags&0x0F)
	if a.Format == SoundAAC {
		dst = append(dst, a.PacketType)
	}
	return append(dst, a.Data...)
}

// AVCConfig is an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1): the
// H.264 parameter sets and the size of the NAL unit length prefix.
type AVCConfig struct {
	Profile, Compat, Level uint8
	LengthSize             int // 1, 2 or 4
	SPS, PPS               [][]byte
}

// ParseAVCConfig parses an AVCDecoderConfigurationRecord. The parameter sets alias p.
// Trailing bytes (the High-profile chroma extension) are ignored.
func ParseAVCConfig(p []byte) (AVCConfig, error) {
	if len(p) < 6 {
		return AVCConfig{}, fmt.Errorf("%w: AVC config of %d bytes", ErrInvalid, len(p))
	}
	if p[0] != 1 {
		return AVCConfig{}, fmt.Errorf("%w: AVC config version %d", ErrInvalid, p[0])
	}
	c := AVCConfig{Profile: p[1], Compat: p[2], Level: p[3], LengthSize: int(p[4]&3) + 1}
	if c.LengthSize == 3 {
		return AVCConfig{}, fmt.Errorf("%w: NAL length size 3", ErrInvalid)
	}
	rest := p[6:]
	readSets := func(n int) ([][]byte, error) {
		sets := make([][]byte, 0, n)
		for range n {
			if len(rest) < 2 {
				return nil, fmt.Errorf("%w: truncated AVC config", ErrInvalid)
			}
			l := int(binary.BigEndian.Uint16(rest))
			if l == 0 || len(rest) < 2+l {
				return nil, fmt.Errorf("%w: parameter set of %d bytes", ErrInvalid, l)
			}
			sets = append(sets, rest[2:2+l:2+l])
			rest = rest[2+l:]
		}
		return sets, nil
	}
	var err error
	if c.SPS, err = readSets(int(p[5] & 0x1F)); err != nil {
		return AVCConfig{}, err
	}
	if len(rest) < 1 {
		return AVCConfig{}, fmt.Errorf("%w: AVC config without PPS count", ErrInvalid)
	}
	n := int(rest[0])
	rest = rest[1:]
	if c.PPS, err = readSets(n); err != nil {
		return AVCConfig{}, err
	}
	if len(c.SPS) == 0 || len(c.PPS) == 0 {
		return AVCConfig{}, fmt.Errorf("%w: AVC config without SPS or PPS", ErrInvalid)
	}
	return c, nil
}

// Marshal returns the AVCDecoderConfigurationRecord of c.
func (c AVCConfig) Marshal() ([]byte, error) {
	ls := map[int]byte{1: 0, 2: 1, 4: 3}
	lsm, ok := ls[c.LengthSize]
	if !ok || len(c.SPS) > 31 || len(c.PPS) > 255 {
		return nil, fmt.Errorf("%w: cannot encode AVC config", ErrInvalid)
	}
	b := []byte{1, c.Profile, c.Compat, c.Level, 0xFC | lsm, 0xE0 | byte(len(c.SPS))}
	for i, sets := range [][][]byte{c.SPS, c.PPS} {
		if i == 1 {
			b = append(b, byte(len(c.PPS)))
		}
		for _, s := range sets {
			if len(s) == 0 || len(s) > 0xFFFF {
				return nil, fmt.Errorf("%w: parameter set of %d bytes", ErrInvalid, len(s))
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
			b = append(b, s...)
		}
	}
	return b, nil
}

// SplitAVCC appends the NAL units of an access unit in AVCC form (each prefixed by its
// length in lengthSize bytes) to dst. The units alias p.
func SplitAVCC(dst [][]byte, p []byte, lengthSize int) ([][]byte, error) {
	if lengthSize != 1 && lengthSize != 2 && lengthSize != 4 {
		return dst, fmt.Errorf("%w: NAL length size %d", ErrInvalid, lengthSize)
	}
	for len(p) > 0 {
		if len(p) < lengthSize {
			return dst, fmt.Errorf("%w: truncated NAL length", ErrInvalid)
		}
		var n uint64
		for _, b := range p[:lengthSize] {
			n = n<<8 | uint64(b)
		}
		p = p[lengthSize:]
		if n > uint64(len(p)) {
			return dst, fmt.Errorf("%w: NAL unit of %d bytes, %d left", ErrInvalid, n, len(p))
		}
		if n > 0 {
			dst = append(dst, p[:n:n])
		}
		p = p[n:]
	}
	return dst, nil
}

// JoinAVCC appends the NAL units in AVCC form with 4-byte lengths to dst.
func JoinAVCC(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	}
	return dst
}
