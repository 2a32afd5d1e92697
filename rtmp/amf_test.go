package rtmp

import (
	"bytes"
	"math"
	"reflect"
	"testing"

	amf0 "github.com/yutopp/go-amf0"
)

// amfCases drive the validator tests and seed FuzzAMF0.
var amfCases = []struct {
	name string
	in   []byte
	ok   bool
}{
	{"empty", nil, true},
	{"number", []byte{amfNumber, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0}, true},
	{"truncated number", []byte{amfNumber, 0x3F}, false},
	{"string", []byte{amfString, 0, 3, 'a', 'b', 'c'}, true},
	{"truncated string", []byte{amfString, 0, 9, 'a'}, false},
	{"null undefined", []byte{amfNull, amfUndefined}, true},
	{"bool", []byte{amfBoolean, 1}, true},
	{"object", []byte{amfObject, 0, 1, 'k', amfNull, 0, 0, amfObjectEnd}, true},
	{"object without end", []byte{amfObject, 0, 1, 'k', amfNull}, false},
	{"ecma array", []byte{amfECMAArray, 0, 0, 0, 1, 0, 1, 'k', amfBoolean, 0, 0, 0, amfObjectEnd}, true},
	{"strict array", []byte{amfStrictArray, 0, 0, 0, 2, amfNull, amfNull}, true},
	{"huge strict array", []byte{amfStrictArray, 0x7F, 0xFF, 0xFF, 0xFF, amfNull}, false},
	{"long string", []byte{amfLongString, 0, 0, 0, 1, 'a'}, false},
	{"unknown marker", []byte{0x11}, false},
	{"reference", []byte{0x07, 0, 1}, false},
	{"date", []byte{amfDate, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true},
	{"deep nesting", deepAMF(100), false},
	{"nesting at the limit", deepAMF(maxAMFDepth), true},
}

// deepAMF nests n strict arrays of one element around a null.
func deepAMF(n int) []byte {
	var b []byte
	for range n {
		b = append(b, amfStrictArray, 0, 0, 0, 1)
	}
	return append(b, amfNull)
}

func TestValidateAMF0(t *testing.T) {
	for _, tc := range amfCases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateAMF0(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("validateAMF0(% x) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

func TestDecodeConnectCommand(t *testing.T) {
	var b bytes.Buffer
	err := encodeAMF0(&b, "connect", float64(1), map[string]any{
		"app": "live", "tcUrl": "rtmp://h/live", "objectEncoding": float64(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	vals, err := decodeAMF0(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if amfStr(vals[0]) != "connect" || amfNum(vals[1]) != 1 || amfStr(amfProps(vals[2])["app"]) != "live" {
		t.Fatalf("decoded %#v", vals)
	}
}

// FuzzAMF0 checks that no input makes the validator or go-amf0 panic, and that what
// decodes re-encodes to something that decodes to the same values.
func FuzzAMF0(f *testing.F) {
	for _, tc := range amfCases {
		f.Add(tc.in)
	}
	var b bytes.Buffer
	_ = encodeAMF0(&b, "onMetaData", amf0.ECMAArray{"width": float64(640), "stereo": true})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		vals, err := decodeAMF0(in)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := encodeAMF0(&out, vals...); err != nil {
			return // e.g. a Date: go-amf0 decodes, but encodes only time.Time values it made
		}
		again, err := decodeAMF0(out.Bytes())
		if err != nil {
			t.Fatalf("re-encoded values do not decode: %v", err)
		}
		if !reflect.DeepEqual(normalizeAMF(vals), normalizeAMF(again)) {
			t.Fatalf("round trip changed values:\n%#v\n%#v", vals, again)
		}
	})
}

// normalizeAMF maps values that legitimately change across a round trip (undefined
// becomes null, NaN is not equal to itself) to comparable forms.
func normalizeAMF(vals []any) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case float64:
			if x != x {
				out[i] = "NaN"
				continue
			}
			out[i] = math.Float64bits(x)
		default:
			out[i] = v
		}
	}
	return out
}
