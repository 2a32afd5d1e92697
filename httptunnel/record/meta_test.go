package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// amfKey encodes a property name (AMF0 UTF-8 without marker).
func amfKey(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	objEnd   = []byte{0, 0, amfObjectEnd}
	ecmaHead = []byte{amfECMAArray, 0, 0, 0, 3}
)

// metaCases drive the parser test and seed the fuzz target.
var metaCases = []struct {
	name   string
	in     []byte
	fields []string // names parsed; nil with err
	err    bool
}{
	{"ecma array", cat(appendString(nil, "onMetaData"), ecmaHead,
		amfKey("duration"), numberValue(0), amfKey("width"), numberValue(640),
		amfKey("encoder"), appendString(nil, "Lavf"), objEnd), []string{"duration", "width", "encoder"}, false},
	{"object", cat(appendString(nil, "onMetaData"), []byte{amfObject},
		amfKey("stereo"), []byte{amfBool, 1}, objEnd), []string{"stereo"}, false},
	{"no end marker", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("a"), numberValue(1)), []string{"a"}, false},
	{"nested and odd values", cat(appendString(nil, "onMetaData"), ecmaHead,
		amfKey("o"), []byte{amfObject}, amfKey("x"), []byte{amfNull}, objEnd,
		amfKey("arr"), []byte{amfStrictArray, 0, 0, 0, 2, amfUndefined, amfBool, 0},
		amfKey("date"), []byte{amfDate, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		amfKey("long"), []byte{amfLongString, 0, 0, 0, 1, 'z'},
		objEnd), []string{"o", "arr", "date", "long"}, false},
	{"empty", nil, nil, true},
	{"not a string", []byte{amfNumber, 0, 0, 0, 0, 0, 0, 0, 0}, nil, true},
	{"name only", appendString(nil, "onMetaData"), nil, true},
	{"name then number", cat(appendString(nil, "onMetaData"), numberValue(1)), nil, true},
	{"truncated number", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("a"), []byte{amfNumber, 1, 2}), nil, true},
	{"huge strict array", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("a"), []byte{amfStrictArray, 0xff, 0xff, 0xff, 0xff}), nil, true},
	{"huge string", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("a"), []byte{amfLongString, 0x7f, 0xff, 0xff, 0xff}), nil, true},
	{"unknown type", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("a"), []byte{amfMovieClip}), nil, true},
	{"too deep", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("a"), bytes.Repeat(cat([]byte{amfObject}, amfKey("b")), 40)), nil, true},
}

func TestParseMetadata(t *testing.T) {
	t.Parallel()
	for _, c := range metaCases {
		t.Run(c.name, func(t *testing.T) {
			name, fields, err := parseMetadata(c.in)
			if c.err {
				if err == nil || !errors.Is(err, errBadMeta) {
					t.Fatalf("err = %v, want an errBadMeta", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != "onMetaData" || len(fields) != len(c.fields) {
				t.Fatalf("name %q, fields %v", name, fields)
			}
			for i, f := range fields {
				if f.Name != c.fields[i] || !bytes.Equal(c.in[f.Off:f.Off+len(f.Raw)], f.Raw) {
					t.Errorf("field %d: %q at %d", i, f.Name, f.Off)
				}
			}
			roundTrip(t, c.in)
		})
	}
}

// roundTrip re-encodes what parseMetadata read from in and checks that it parses to
// the same fields, with each value's offset pointing at it.
func roundTrip(t *testing.T, in []byte) {
	name, fields, err := parseMetadata(in)
	if err != nil {
		return
	}
	out, offs := appendMetadata(nil, name, fields)
	name2, fields2, err := parseMetadata(out)
	if err != nil {
		t.Fatalf("re-encoded metadata does not parse: %v", err)
	}
	if name2 != name || len(fields2) != len(fields) {
		t.Fatalf("round trip: %q %d fields, then %q %d", name, len(fields), name2, len(fields2))
	}
	for i := range fields {
		if fields2[i].Name != fields[i].Name || !bytes.Equal(fields2[i].Raw, fields[i].Raw) || fields2[i].Off != offs[i] {
			t.Fatalf("round trip: field %d %q differs", i, fields[i].Name)
		}
	}
}

// FuzzParseMetadata: parsing never panics or over-reads; what parses re-encodes to
// the same properties; a number field patched in place reads back.
func FuzzParseMetadata(f *testing.F) {
	for _, c := range metaCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		roundTrip(t, in)
		if _, fields, err := parseMetadata(in); err == nil {
			for _, fd := range fields {
				if _, ok := fd.number(); ok && len(fd.Raw) != 9 {
					t.Fatalf("number field %q of %d bytes", fd.Name, len(fd.Raw))
				}
			}
		}
	})
}

// TestHeaderMetadata: the file's onMetaData starts with patchable duration and
// filesize and keeps the publisher's other properties; the header flags follow the
// publisher's codec ids.
func TestHeaderMetadata(t *testing.T) {
	t.Parallel()
	pub := metaCases[0].in // duration, width, encoder: no codec ids
	for _, c := range []struct {
		name         string
		in           []byte
		audio, video bool
		fields       []string
	}{
		{"none", nil, true, true, []string{"duration", "filesize"}},
		{"publisher's", pub, true, true, []string{"duration", "filesize", "width", "encoder"}},
		{"video only", cat(appendString(nil, "onMetaData"), ecmaHead, amfKey("videocodecid"), numberValue(7), objEnd), false, true,
			[]string{"duration", "filesize", "videocodecid"}},
		{"garbage", []byte{1, 2, 3}, true, true, []string{"duration", "filesize"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var pkt *relay.Packet
			if c.in != nil {
				pkt = &relay.Packet{Kind: relay.KindMetadata, Payload: c.in}
			}
			body, durOff, sizeOff, audio, video := headerMetadata(pkt)
			if audio != c.audio || video != c.video {
				t.Errorf("audio %v video %v", audio, video)
			}
			_, fields, err := parseMetadata(body)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range fields {
				names = append(names, f.Name)
			}
			if len(names) != len(c.fields) {
				t.Fatalf("fields %v, want %v", names, c.fields)
			}
			for i := range names {
				if names[i] != c.fields[i] {
					t.Fatalf("fields %v, want %v", names, c.fields)
				}
			}
			binary.BigEndian.PutUint64(body[durOff:], math.Float64bits(12.5))
			binary.BigEndian.PutUint64(body[sizeOff:], math.Float64bits(4096))
			_, fields, _ = parseMetadata(body)
			if d, _ := fields[0].number(); d != 12.5 {
				t.Errorf("patched duration reads %v", d)
			}
			if s, _ := fields[1].number(); s != 4096 {
				t.Errorf("patched filesize reads %v", s)
			}
		})
	}
}

// fileNameCases drive TestFileName and seed FuzzParseFileName.
var fileNameCases = []struct {
	name   string
	stream string
	n      int
	ok     bool
}{
	{"cam-20261130-120000.flv", "cam", 0, true},
	{"my-cam-2-20261130-235959-3.flv", "my-cam-2", 3, true},
	{"x-20261130-120000-0.flv", "", 0, false},
	{"x-20261130-120000-01.flv", "", 0, false},
	{"x-20261130-1200.flv", "", 0, false},
	{"-20261130-120000.flv", "", 0, false},
	{"x-20261332-120000.flv", "", 0, false},
	{"x-20261130-120000.mp4", "", 0, false},
	{"x.flv", "", 0, false},
}

func TestFileName(t *testing.T) {
	t.Parallel()
	for _, c := range fileNameCases {
		t.Run(c.name, func(t *testing.T) {
			stream, start, n, ok := parseFileName(c.name)
			if ok != c.ok || stream != c.stream || n != c.n {
				t.Fatalf("parseFileName = %q %v %d %v, want %q %d %v", stream, start, n, ok, c.stream, c.n, c.ok)
			}
			if ok && fileName(stream, start, n) != c.name {
				t.Errorf("fileName round trip: %q", fileName(stream, start, n))
			}
		})
	}
	at := time.Date(2026, 11, 30, 12, 0, 1, 0, time.FixedZone("x", 3600))
	if got := fileName("a", at, 0); got != "a-20261130-110001.flv" {
		t.Errorf("fileName uses %q, want UTC", got)
	}
}

// FuzzParseFileName: a name that parses is rebuilt exactly by fileName.
func FuzzParseFileName(f *testing.F) {
	for _, c := range fileNameCases {
		f.Add(c.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		stream, start, n, ok := parseFileName(name)
		if ok && fileName(stream, start, n) != name {
			t.Fatalf("%q parsed to %q %v %d, which names %q", name, stream, start, n, fileName(stream, start, n))
		}
	})
}

// patternCases drive TestPatternsParse.
var patternCases = []struct {
	name  string
	in    []string
	err   bool
	str   string
	match map[string]bool
}{
	{"nil is none", nil, false, "none", map[string]bool{"live/a": false}},
	{"none", []string{"none"}, false, "none", map[string]bool{"live/a": false}},
	{"all", []string{" all "}, false, "all", map[string]bool{"live/a": true, "x/y": true}},
	{"globs", []string{"live/*", "", "event/cam?"}, false, "live/*,event/cam?",
		map[string]bool{"live/a": true, "event/cam1": true, "event/cam12": false, "other/a": false}},
	{"exact", []string{"live/main"}, false, "live/main", map[string]bool{"live/main": true, "live/main2": false}},
	{"all with others", []string{"all", "live/*"}, true, "", nil},
	{"none with others", []string{"live/*", "none"}, true, "", nil},
	{"no slash", []string{"live"}, true, "", nil},
	{"two slashes", []string{"live/a/b"}, true, "", nil},
	{"empty app", []string{"/a"}, true, "", nil},
	{"bad glob", []string{"live/["}, true, "", nil},
}

func TestPatternsParse(t *testing.T) {
	t.Parallel()
	for _, c := range patternCases {
		t.Run(c.name, func(t *testing.T) {
			p, err := parsePatterns(c.in)
			if c.err {
				if err == nil {
					t.Fatalf("parsePatterns(%q) = %v, want an error", c.in, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != c.str {
				t.Errorf("String() = %q, want %q", p.String(), c.str)
			}
			for key, want := range c.match {
				if p.match(key) != want {
					t.Errorf("match(%q) = %v, want %v", key, !want, want)
				}
			}
		})
	}
}
