package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	amf0 "github.com/yutopp/go-amf0"
)

// AMF0 markers (AMF0 spec §2.1) that the validator understands.
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
	amfUnsupported = 0x0D
)

// maxAMFDepth bounds nesting of objects and arrays in client AMF.
const maxAMFDepth = 16

var errAMF = errors.New("rtmp: malformed amf0")

// validateAMF0 checks that b is a sequence of well-formed AMF0 values that go-amf0 can
// decode without trouble. go-amf0 recurses without a depth limit (a deep nesting blows
// the goroutine stack, which no recover catches) and sizes strict arrays from the
// declared count before reading them (a 2^31 count allocates 32 GiB), so every byte
// from a client goes through this bounded, non-allocating walk first.
func validateAMF0(b []byte) error {
	for len(b) > 0 {
		n, err := amfValueLen(b, 0)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// amfValueLen returns the encoded length of the value at the start of b.
func amfValueLen(b []byte, depth int) (int, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: truncated", errAMF)
	}
	if depth > maxAMFDepth {
		return 0, fmt.Errorf("%w: nested deeper than %d", errAMF, maxAMFDepth)
	}
	switch b[0] {
	case amfNumber:
		return need(b, 9)
	case amfBoolean:
		return need(b, 2)
	case amfString:
		if len(b) < 3 {
			return 0, fmt.Errorf("%w: truncated string", errAMF)
		}
		return need(b, 3+int(binary.BigEndian.Uint16(b[1:])))
	case amfLongString:
		if len(b) < 5 {
			return 0, fmt.Errorf("%w: truncated long string", errAMF)
		}
		// go-amf0 does not implement long strings.
		return 0, fmt.Errorf("%w: long string not supported", errAMF)
	case amfNull, amfUndefined, amfUnsupported:
		return 1, nil
	case amfDate:
		return need(b, 11)
	case amfObject:
		n, err := amfPropsLen(b[1:], depth)
		return 1 + n, err
	case amfECMAArray:
		if len(b) < 5 {
			return 0, fmt.Errorf("%w: truncated ecma array", errAMF)
		}
		n, err := amfPropsLen(b[5:], depth)
		return 5 + n, err
	case amfStrictArray:
		if len(b) < 5 {
			return 0, fmt.Errorf("%w: truncated strict array", errAMF)
		}
		count := binary.BigEndian.Uint32(b[1:])
		// Every element takes at least one byte.
		if uint64(count) > uint64(len(b)-5) {
			return 0, fmt.Errorf("%w: strict array of %d elements in %d bytes", errAMF, count, len(b)-5)
		}
		off := 5
		for range count {
			n, err := amfValueLen(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += n
		}
		return off, nil
	default:
		return 0, fmt.Errorf("%w: unsupported marker 0x%02x", errAMF, b[0])
	}
}

// amfPropsLen returns the length of object properties up to and including the end marker.
func amfPropsLen(b []byte, depth int) (int, error) {
	off := 0
	for {
		if len(b)-off < 3 {
			return 0, fmt.Errorf("%w: truncated object", errAMF)
		}
		klen := int(binary.BigEndian.Uint16(b[off:]))
		if klen == 0 && b[off+2] == amfObjectEnd {
			return off + 3, nil
		}
		off += 2 + klen
		if off > len(b) {
			return 0, fmt.Errorf("%w: truncated key", errAMF)
		}
		n, err := amfValueLen(b[off:], depth+1)
		if err != nil {
			return 0, err
		}
		off += n
	}
}

func need(b []byte, n int) (int, error) {
	if len(b) < n {
		return 0, fmt.Errorf("%w: truncated value", errAMF)
	}
	return n, nil
}

// decodeAMF0 validates b and decodes every value in it with go-amf0.
func decodeAMF0(b []byte) ([]any, error) {
	if err := validateAMF0(b); err != nil {
		return nil, err
	}
	dec := amf0.NewDecoder(bytes.NewReader(b))
	var vals []any
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return vals, nil
			}
			return nil, fmt.Errorf("decode amf0: %w", err)
		}
		vals = append(vals, v)
	}
}

// encodeAMF0 appends the AMF0 encoding of vals to dst.
func encodeAMF0(dst *bytes.Buffer, vals ...any) error {
	enc := amf0.NewEncoder(dst)
	for _, v := range vals {
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode amf0 %T: %w", v, err)
		}
	}
	return nil
}

// amfString returns v as a string when it is one.
func amfStr(v any) string {
	s, _ := v.(string)
	return s
}

// amfNum returns v as a float64 when it is a number (NaN otherwise).
func amfNum(v any) float64 {
	if f, ok := v.(float64); ok {
		return f
	}
	return math.NaN()
}

// amfProps returns v as a property map when it is an object or ECMA array.
func amfProps(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case amf0.ECMAArray:
		return m
	}
	return nil
}
