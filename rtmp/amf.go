package rtmp

import (
	"bytes"
	"fmt"
	"math"

	amf0 "github.com/yutopp/go-amf0"

	"github.com/mtrelay/mtrelay/rtmp/amf"
)

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

// amfStr returns v as a string when it is one.
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
	case amf.ECMAArray:
		return m
	}
	return nil
}
