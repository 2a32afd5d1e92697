package rtmptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// ErrBadFLV is returned by ParseFLV and ReadFLV for input that is not a
// well-formed FLV file.
var ErrBadFLV = errors.New("rtmptest: bad flv")

// FLV tag types (FLV 10.1 Annex E.4.1), equal to the RTMP message type IDs
// that carry the same payloads (RTMP 1.0 §7.1).
const (
	TypeAudio = 8  // audio tag / message
	TypeVideo = 9  // video tag / message
	TypeData  = 18 // script data tag / AMF0 data message
)

const (
	flvHeaderLen    = 9  // FLV 10.1 E.2: "FLV", version, flags, DataOffset
	flvTagHeaderLen = 11 // FLV 10.1 E.4.1
	flvMaxDataSize  = 0xFFFFFF
)

// FLVTag is one tag of an FLV file (FLV 10.1 Annex E.4.1), which is also one
// RTMP message body.
type FLVTag struct {
	TypeID    uint8  // TagType without the Filter bit: 8 audio, 9 video, 18 script data
	Timestamp uint32 // milliseconds, with the TimestampExtended byte as the upper 8 bits
	Payload   []byte // tag data (AUDIODATA, VIDEODATA or SCRIPTDATA)
}

// ReadFLV reads the FLV file at path and returns its tags, see ParseFLV.
func ReadFLV(path string) ([]FLVTag, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rtmptest: read flv: %w", err)
	}
	tags, err := ParseFLV(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tags, nil
}

// ParseFLV splits an FLV file (FLV 10.1 Annex E.2, E.3) into tags, in file
// order. Tags of every type are returned, encrypted (Filter bit) ones
// included. The PreviousTagSize fields are not checked, and the last one may
// be missing, as with files cut short by a stopped recorder. Payloads share
// b's memory.
func ParseFLV(b []byte) ([]FLVTag, error) {
	if len(b) < flvHeaderLen || string(b[:3]) != "FLV" {
		return nil, fmt.Errorf("rtmptest: flv header: %w", ErrBadFLV)
	}
	// DataOffset is the header's own size; version 1 files use 9, and later
	// versions may append fields we skip.
	off := binary.BigEndian.Uint32(b[5:9])
	if off < flvHeaderLen || uint64(off)+4 > uint64(len(b)) {
		return nil, fmt.Errorf("rtmptest: flv data offset %d in %d bytes: %w", off, len(b), ErrBadFLV)
	}
	b = b[off+4:] // PreviousTagSize0, always 0

	var tags []FLVTag
	for len(b) > 0 {
		if len(b) < flvTagHeaderLen {
			return tags, fmt.Errorf("rtmptest: flv tag %d: truncated header: %w", len(tags), ErrBadFLV)
		}
		size := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		ts := uint32(b[7])<<24 | uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		if len(b) < flvTagHeaderLen+size {
			return tags, fmt.Errorf("rtmptest: flv tag %d: %d bytes of data, %d left: %w",
				len(tags), size, len(b)-flvTagHeaderLen, ErrBadFLV)
		}
		end := flvTagHeaderLen + size
		tags = append(tags, FLVTag{TypeID: b[0] & 0x1f, Timestamp: ts, Payload: b[flvTagHeaderLen:end:end]})
		b = b[end:]
		if len(b) < 4 {
			if len(b) == 0 {
				break
			}
			return tags, fmt.Errorf("rtmptest: flv tag %d: truncated previous tag size: %w", len(tags)-1, ErrBadFLV)
		}
		b = b[4:]
	}
	return tags, nil
}

// AppendFLV appends a complete FLV file holding tags to dst: a version 1
// header with the audio and video flags set for the tag types present, then
// every tag followed by its PreviousTagSize (FLV 10.1 Annex E). It returns
// an error wrapping ErrBadFLV if a payload exceeds the 24-bit DataSize.
func AppendFLV(dst []byte, tags []FLVTag) ([]byte, error) {
	var flags byte
	for _, t := range tags {
		switch t.TypeID {
		case TypeAudio:
			flags |= 4
		case TypeVideo:
			flags |= 1
		}
		if len(t.Payload) > flvMaxDataSize {
			return dst, fmt.Errorf("rtmptest: flv tag of %d bytes: %w", len(t.Payload), ErrBadFLV)
		}
	}
	dst = append(dst, 'F', 'L', 'V', 1, flags, 0, 0, 0, flvHeaderLen, 0, 0, 0, 0)
	for _, t := range tags {
		n := len(t.Payload)
		ts := t.Timestamp
		dst = append(dst, t.TypeID&0x1f, byte(n>>16), byte(n>>8), byte(n),
			byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
		dst = append(dst, t.Payload...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(flvTagHeaderLen+n))
	}
	return dst, nil
}
