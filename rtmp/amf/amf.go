package amf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/yutopp/go-amf0"
)

// ErrMalformed is returned by Decode for a payload that is not a sequence
// of AMF0 values.
var ErrMalformed = errors.New("amf: bad amf0")

// Encode encodes values one after the other in AMF0 (the body of a
// command or data message, RTMP 1.0 §7.1.1/§7.1.2). float64 and other
// numbers become Number, string String, bool Boolean, nil Null,
// map[string]any Object, ECMAArray ECMA Array and []any Strict Array.
func Encode(values ...any) ([]byte, error) {
	var b bytes.Buffer
	e := amf0.NewEncoder(&b)
	for i, v := range values {
		if err := e.Encode(toAMF(v)); err != nil {
			return nil, fmt.Errorf("amf: encode amf0 value %d (%T): %w", i, v, err)
		}
	}
	return b.Bytes(), nil
}

// toAMF replaces ECMAArray by go-amf0's type, at any depth.
func toAMF(v any) any {
	switch v := v.(type) {
	case ECMAArray:
		m := make(amf0.ECMAArray, len(v))
		for k, e := range v {
			m[k] = toAMF(e)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = toAMF(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = toAMF(e)
		}
		return a
	default:
		return v
	}
}

// ECMAArray is an AMF0 ECMA Array (AMF0 §2.10), the type of onMetaData's
// argument (FLV 10.1 Annex E.5). Encode encodes it as such; Decode
// returns ECMA Arrays as ECMAArray too.
type ECMAArray map[string]any

// Decode decodes every AMF0 value in p (AMF0 §2): Number as float64,
// Boolean as bool, String and Long String as string, Null and Undefined as
// nil, Object as map[string]any, ECMA Array as ECMAArray, Strict Array as
// []any and Date as time.Time. It never panics, and allocates in proportion
// to len(p).
//
// It does not use go-amf0's decoder: v0.1.0 reuses one value for every
// property of an ECMA Array, so a nested object after another property is
// lost and decoding fails.
func Decode(p []byte) ([]any, error) {
	var values []any
	for len(p) > 0 {
		v, rest, err := decodeValue(p, 0)
		if err != nil {
			return values, fmt.Errorf("amf: decode amf0 value %d: %w", len(values), err)
		}
		values = append(values, v)
		p = rest
	}
	return values, nil
}

// DecodeOne decodes the first AMF0 value in p and returns it with the bytes after it.
func DecodeOne(p []byte) (v any, rest []byte, err error) {
	v, rest, err = decodeValue(p, 0)
	if err != nil {
		return nil, p, fmt.Errorf("amf: decode amf0: %w", err)
	}
	return v, rest, nil
}

// AMF0 markers (AMF0 §2.1).
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0A
	amfDate        = 0x0B
	amfLongString  = 0x0C
	amfMaxDepth    = 32 // nesting limit, so hostile input cannot exhaust the stack
	// maxDateMillis keeps a Date within time.Time's UnixNano range (years
	// 1678..2262), which go-amf0's encoder needs.
	maxDateMillis = 9e12
)

var errShort = fmt.Errorf("%w: %w", ErrMalformed, io.ErrUnexpectedEOF)

// decodeValue decodes one value at the start of p and returns the rest.
func decodeValue(p []byte, depth int) (any, []byte, error) {
	if len(p) == 0 {
		return nil, p, errShort
	}
	if depth > amfMaxDepth {
		return nil, p, fmt.Errorf("%w: nested deeper than %d", ErrMalformed, amfMaxDepth)
	}
	marker, p := p[0], p[1:]
	switch marker {
	case amfNumber:
		if len(p) < 8 {
			return nil, p, errShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), p[8:], nil
	case amfBoolean:
		if len(p) < 1 {
			return nil, p, errShort
		}
		return p[0] != 0, p[1:], nil
	case amfString:
		return decodeString(p, 2)
	case amfLongString:
		return decodeString(p, 4)
	case amfNull, amfUndefined:
		return nil, p, nil
	case amfObject:
		m := map[string]any{}
		rest, err := decodeProperties(p, depth, m)
		return m, rest, err
	case amfECMAArray:
		if len(p) < 4 {
			return nil, p, errShort
		}
		m := ECMAArray{} // the count is a hint only; the end marker ends the array
		rest, err := decodeProperties(p[4:], depth, m)
		return m, rest, err
	case amfStrictArray:
		if len(p) < 4 {
			return nil, p, errShort
		}
		n := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(n) > uint64(len(p)) { // every value takes at least one byte
			return nil, p, errShort
		}
		a := make([]any, n)
		for i := range a {
			var err error
			if a[i], p, err = decodeValue(p, depth+1); err != nil {
				return nil, p, err
			}
		}
		return a, p, nil
	case amfDate:
		if len(p) < 10 {
			return nil, p, errShort
		}
		ms := math.Float64frombits(binary.BigEndian.Uint64(p))
		if math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > maxDateMillis {
			return nil, p, fmt.Errorf("%w: date %v", ErrMalformed, ms)
		}
		return time.UnixMilli(int64(ms)).UTC(), p[10:], nil
	default:
		return nil, p, fmt.Errorf("%w: marker %#x", ErrMalformed, marker)
	}
}

// decodeString decodes a string whose length field has n bytes.
func decodeString(p []byte, n int) (any, []byte, error) {
	if len(p) < n {
		return nil, p, errShort
	}
	var l uint64
	for _, b := range p[:n] {
		l = l<<8 | uint64(b)
	}
	p = p[n:]
	if l > uint64(len(p)) {
		return nil, p, errShort
	}
	return string(p[:l]), p[l:], nil
}

// decodeProperties decodes name/value pairs into m up to the empty name and
// object end marker (AMF0 §2.5).
func decodeProperties[M ~map[string]any](p []byte, depth int, m M) ([]byte, error) {
	for {
		k, rest, err := decodeString(p, 2)
		if err != nil {
			return rest, err
		}
		p = rest
		if k == "" && len(p) > 0 && p[0] == amfObjectEnd {
			return p[1:], nil
		}
		var v any
		if v, p, err = decodeValue(p, depth+1); err != nil {
			return p, err
		}
		m[k.(string)] = v
	}
}
