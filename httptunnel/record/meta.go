package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// AMF0 type markers (AMF0 spec §2.1) that script data (FLV 10.1 E.4.4) uses.
const (
	amfNumber      = 0x00
	amfBool        = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfMovieClip   = 0x04 // reserved, never valid
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfReference   = 0x07
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0A
	amfDate        = 0x0B
	amfLongString  = 0x0C
)

// maxMetaDepth bounds the nesting of objects and arrays in a metadata value.
const maxMetaDepth = 16

// errBadMeta is wrapped by every metadata parse error.
var errBadMeta = errors.New("record: bad script data")

// metaField is one property of an onMetaData array: its name and its value, still
// encoded (marker included), so that values this package does not interpret are
// copied to the file byte for byte.
type metaField struct {
	Name string
	Raw  []byte // the encoded AMF0 value; aliases the parsed input
	Off  int    // offset of Raw in the parsed input
}

// number returns the value of a Number field; false for other types.
func (f metaField) number() (float64, bool) {
	if len(f.Raw) != 9 || f.Raw[0] != amfNumber {
		return 0, false
	}
	return math.Float64frombits(binary.BigEndian.Uint64(f.Raw[1:])), true
}

// parseMetadata parses a script data body as RTMP publishers send it (after the
// relay stripped "@setDataFrame"): an AMF0 string, normally "onMetaData", then an
// ECMA array or an object of properties (FLV 10.1 E.4.4.1). Anything after the
// array is ignored. Every length is checked against the input; nesting is bounded.
func parseMetadata(b []byte) (name string, fields []metaField, err error) {
	if len(b) < 3 || b[0] != amfString {
		return "", nil, fmt.Errorf("%w: no name string", errBadMeta)
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if len(b) < 3+n {
		return "", nil, fmt.Errorf("%w: name of %d bytes in %d", errBadMeta, n, len(b))
	}
	name = string(b[3 : 3+n])
	off := 3 + n
	if off >= len(b) {
		return "", nil, fmt.Errorf("%w: no properties after %q", errBadMeta, name)
	}
	switch b[off] {
	case amfECMAArray:
		off += 5 // marker, u32 count (a hint only: the end marker decides)
	case amfObject:
		off++
	default:
		return "", nil, fmt.Errorf("%w: %q is followed by type %d, not an array", errBadMeta, name, b[off])
	}
	for {
		if off+3 > len(b) {
			// Some writers omit the object end marker of the top-level array.
			if off >= len(b) {
				return name, fields, nil
			}
			return "", nil, fmt.Errorf("%w: truncated property name", errBadMeta)
		}
		kl := int(binary.BigEndian.Uint16(b[off:]))
		if kl == 0 && b[off+2] == amfObjectEnd {
			return name, fields, nil
		}
		if off+2+kl > len(b) {
			return "", nil, fmt.Errorf("%w: property name of %d bytes", errBadMeta, kl)
		}
		key := string(b[off+2 : off+2+kl])
		off += 2 + kl
		vl, err := valueLen(b[off:], 0)
		if err != nil {
			return "", nil, fmt.Errorf("property %q: %w", key, err)
		}
		fields = append(fields, metaField{Name: key, Raw: b[off : off+vl], Off: off})
		off += vl
	}
}

// valueLen returns the encoded length of the AMF0 value at the start of b.
func valueLen(b []byte, depth int) (int, error) {
	if depth > maxMetaDepth {
		return 0, fmt.Errorf("%w: nested deeper than %d", errBadMeta, maxMetaDepth)
	}
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: missing value", errBadMeta)
	}
	need := func(n int) (int, error) {
		if n > len(b) {
			return 0, fmt.Errorf("%w: value of type %d needs %d bytes, has %d", errBadMeta, b[0], n, len(b))
		}
		return n, nil
	}
	switch b[0] {
	case amfNumber:
		return need(9)
	case amfBool:
		return need(2)
	case amfString:
		if len(b) < 3 {
			return need(3)
		}
		return need(3 + int(binary.BigEndian.Uint16(b[1:3])))
	case amfLongString:
		if len(b) < 5 {
			return need(5)
		}
		return need(5 + int(binary.BigEndian.Uint32(b[1:5])))
	case amfNull, amfUndefined:
		return 1, nil
	case amfReference:
		return need(3)
	case amfDate:
		return need(11) // number + s16 time zone
	case amfObject, amfECMAArray:
		off := 1
		if b[0] == amfECMAArray {
			off = 5
		}
		for {
			if off+3 > len(b) {
				return 0, fmt.Errorf("%w: unterminated object", errBadMeta)
			}
			kl := int(binary.BigEndian.Uint16(b[off:]))
			if kl == 0 && b[off+2] == amfObjectEnd {
				return off + 3, nil
			}
			off += 2 + kl
			if off > len(b) {
				return 0, fmt.Errorf("%w: property name of %d bytes", errBadMeta, kl)
			}
			vl, err := valueLen(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += vl
		}
	case amfStrictArray:
		if len(b) < 5 {
			return need(5)
		}
		count := binary.BigEndian.Uint32(b[1:5])
		off := 5
		for i := uint32(0); i < count; i++ {
			// Every element takes at least one byte, so a count larger than what is
			// left fails here, on the first missing value, without allocating.
			vl, err := valueLen(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += vl
		}
		return off, nil
	}
	return 0, fmt.Errorf("%w: unsupported type %d", errBadMeta, b[0])
}

// appendMetadata encodes name and fields as a script data body: the name string and
// an ECMA array of the fields (FLV 10.1 E.4.4.1). It returns the body and, for
// each field, the offset of its encoded value in the body. Field names longer than
// 65535 bytes are cut (they cannot come from parseMetadata).
func appendMetadata(dst []byte, name string, fields []metaField) ([]byte, []int) {
	dst = appendString(dst, name)
	dst = append(dst, amfECMAArray)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(fields)))
	offs := make([]int, len(fields))
	for i, f := range fields {
		k := f.Name
		if len(k) > math.MaxUint16 {
			k = k[:math.MaxUint16]
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		offs[i] = len(dst)
		dst = append(dst, f.Raw...)
	}
	return append(dst, 0, 0, amfObjectEnd), offs
}

// appendString appends an AMF0 String (a Long String past 65535 bytes).
func appendString(dst []byte, s string) []byte {
	if len(s) > math.MaxUint16 {
		dst = append(dst, amfLongString)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		return append(dst, s...)
	}
	dst = append(dst, amfString)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// numberValue encodes an AMF0 Number: the marker and 8 bytes, always 9 bytes, so a
// number in a file can be rewritten in place.
func numberValue(v float64) []byte {
	return binary.BigEndian.AppendUint64([]byte{amfNumber}, math.Float64bits(v))
}
