package amf

import (
	"errors"
	"fmt"
	"testing"
)

// cases drive the decode tests and seed FuzzDecode.
var cases = []struct {
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
	{"long string", []byte{amfLongString, 0, 0, 0, 1, 'a'}, true},
	{"unknown marker", []byte{0x11}, false},
	{"reference", []byte{0x07, 0, 1}, false},
	{"date", []byte{amfDate, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true},
	{"deep nesting", deep(100), false},
	{"nesting at the limit", deep(amfMaxDepth), true},
}

// deep nests n strict arrays of one element around a null.
func deep(n int) []byte {
	var b []byte
	for range n {
		b = append(b, amfStrictArray, 0, 0, 0, 1)
	}
	return append(b, amfNull)
}

func TestDecode(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("Decode(% x) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	in := []any{"onMetaData", ECMAArray{"width": 640.0, "nested": map[string]any{"a": true}, "z": "after nested"}, nil, 1.5, []any{"x", 2.0}}
	b, err := Encode(in...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("decoded %v, want %v", out, in)
	}
	if _, err := Decode(b[:len(b)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v, want ErrMalformed", err)
	}
	v, rest, err := DecodeOne(b)
	if err != nil || v != "onMetaData" || len(rest) != len(b)-13 {
		t.Fatalf("DecodeOne = %v, %d bytes left, %v", v, len(rest), err)
	}
}

// FuzzDecode checks Decode never panics and that what it decodes survives Encode and
// Decode.
func FuzzDecode(f *testing.F) {
	for _, tc := range cases {
		f.Add(tc.in)
	}
	b, _ := Encode("onMetaData", ECMAArray{"a": map[string]any{"b": []any{1.0, nil, "x"}}, "c": true})
	f.Add(b)
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := Decode(p)
		if err != nil {
			return
		}
		re, err := Encode(v...)
		if err != nil {
			t.Fatalf("Encode of %v: %v", v, err)
		}
		again, err := Decode(re)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(v) {
			t.Fatalf("round trip: %v, %v; want %v", again, err, v)
		}
	})
}
