package rtmptest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// flvCase is one FLV file and its tags. The table drives TestParseFLV
// (decode), TestAppendFLV (encode, for canonical cases) and FuzzReadFLV seeds.
type flvCase struct {
	name      string
	file      []byte
	want      []FLVTag
	err       error // nil: parses fine
	canonical bool  // file is exactly AppendFLV(want)
}

// flvHeader is a version 1 header with the given flags and data offset,
// plus PreviousTagSize0.
func flvHeader(flags byte, offset uint32) []byte {
	b := append([]byte("FLV\x01"), flags)
	b = binary.BigEndian.AppendUint32(b, offset)
	for range int(offset) - 9 {
		b = append(b, 0xEE)
	}
	return append(b, 0, 0, 0, 0)
}

// flvTag is a tag with its PreviousTagSize; tagType is written as given.
func flvTag(tagType byte, ts uint32, data []byte) []byte {
	n := len(data)
	b := []byte{tagType, byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0}
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, uint32(11+n))
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var flvCases = []flvCase{
	{name: "header only", file: flvHeader(5, 9), canonical: false, want: nil},
	{name: "no tags canonical", file: flvHeader(0, 9), canonical: true},
	{
		name:      "audio video data",
		file:      join(flvHeader(5, 9), flvTag(18, 0, []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}), flvTag(9, 0, []byte{0x17, 0, 0, 0, 0}), flvTag(8, 23, []byte{0xAF, 1, 2})),
		want:      []FLVTag{{18, 0, []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}}, {9, 0, []byte{0x17, 0, 0, 0, 0}}, {8, 23, []byte{0xAF, 1, 2}}},
		canonical: true,
	},
	{
		name:      "extended timestamp byte",
		file:      join(flvHeader(1, 9), flvTag(9, 0x12345678, []byte{0x27})),
		want:      []FLVTag{{9, 0x12345678, []byte{0x27}}},
		canonical: true,
	},
	{name: "empty tag", file: join(flvHeader(4, 9), flvTag(8, 1, nil)), want: []FLVTag{{8, 1, []byte{}}}, canonical: true},
	{name: "data offset 13", file: join(flvHeader(1, 13), flvTag(9, 5, []byte{1})), want: []FLVTag{{9, 5, []byte{1}}}},
	{name: "filter and reserved bits stripped", file: join(flvHeader(4, 9), flvTag(0xE8, 5, []byte{1})), want: []FLVTag{{8, 5, []byte{1}}}},
	{name: "last previous tag size missing", file: join(flvHeader(1, 9), flvTag(9, 5, []byte{1}))[:9+4+12], want: []FLVTag{{9, 5, []byte{1}}}},
	{name: "not flv", file: []byte("FLX\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"), err: ErrBadFLV},
	{name: "short header", file: []byte("FLV\x01"), err: ErrBadFLV},
	{name: "data offset below 9", file: []byte("FLV\x01\x05\x00\x00\x00\x08\x00\x00\x00\x00"), err: ErrBadFLV},
	{name: "data offset beyond file", file: []byte("FLV\x01\x05\xff\xff\xff\xff\x00\x00\x00\x00"), err: ErrBadFLV},
	{name: "truncated tag header", file: join(flvHeader(1, 9), flvTag(9, 5, []byte{1})[:10]), err: ErrBadFLV},
	{name: "truncated tag data", file: join(flvHeader(1, 9), flvTag(9, 5, []byte{1, 2, 3})[:12]), err: ErrBadFLV},
	{name: "truncated previous tag size", file: join(flvHeader(1, 9), flvTag(9, 5, []byte{1}))[:9+4+12+2], want: []FLVTag{{9, 5, []byte{1}}}, err: ErrBadFLV},
}

func checkTags(t *testing.T, got, want []FLVTag) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d tags, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].TypeID != want[i].TypeID || got[i].Timestamp != want[i].Timestamp || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Errorf("tag %d: got {%d %#x %x}, want {%d %#x %x}", i,
				got[i].TypeID, got[i].Timestamp, got[i].Payload, want[i].TypeID, want[i].Timestamp, want[i].Payload)
		}
	}
}

func TestParseFLV(t *testing.T) {
	for _, tc := range flvCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFLV(tc.file)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			checkTags(t, got, tc.want)
		})
	}
}

func TestAppendFLV(t *testing.T) {
	for _, tc := range flvCases {
		if !tc.canonical {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendFLV(nil, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.file) {
				t.Fatalf("AppendFLV wrote\n%x\nwant\n%x", got, tc.file)
			}
		})
	}
	if _, err := AppendFLV(nil, []FLVTag{{TypeID: 9, Payload: make([]byte, 1<<24)}}); !errors.Is(err, ErrBadFLV) {
		t.Fatalf("16 MiB tag: %v, want ErrBadFLV", err)
	}
}

// FuzzReadFLV checks ParseFLV never panics and that what it parses survives
// AppendFLV and ParseFLV unchanged.
func FuzzReadFLV(f *testing.F) {
	for _, tc := range flvCases {
		f.Add(tc.file)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		tags, err := ParseFLV(file)
		if err != nil {
			return
		}
		re, err := AppendFLV(nil, tags)
		if err != nil {
			t.Fatalf("AppendFLV of parsed tags: %v", err)
		}
		again, err := ParseFLV(re)
		if err != nil {
			t.Fatalf("ParseFLV of AppendFLV output: %v", err)
		}
		checkTags(t, again, tags)
	})
}

// fixture is the shared FLV fixture made by testdata/gen.sh.
const fixture = "../../testdata/fixture.flv"

// TestReadFLVFixture parses the ffmpeg-made fixture and checks the tags
// against ffprobe's view of the same file: ffprobe reports every audio and
// video frame tag as a packet, with the FLV codec headers stripped.
func TestReadFLVFixture(t *testing.T) {
	tags, err := ReadFLV(FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) == 0 || tags[0].TypeID != TypeData {
		t.Fatalf("%d tags, first not onMetaData", len(tags))
	}
	v, err := DecodeAMF0(tags[0].Payload)
	if err != nil || len(v) != 2 || v[0] != "onMetaData" {
		t.Fatalf("first tag decodes to %v, %v; want onMetaData and its array", v, err)
	}
	// Frames: audio and video tags minus AAC/AVC sequence headers and the
	// AVC end of sequence ffmpeg appends (FLV 10.1 E.4.2.2, E.4.3.1).
	var media []FLVTag
	for _, tag := range tags {
		isAAC := tag.TypeID == TypeAudio && len(tag.Payload) > 1 && tag.Payload[0]>>4 == 10
		isAVC := tag.TypeID == TypeVideo && len(tag.Payload) > 1 && tag.Payload[0]&0xf == 7
		if (isAAC || isAVC) && tag.Payload[1] != 1 {
			continue
		}
		if tag.TypeID == TypeAudio || tag.TypeID == TypeVideo {
			media = append(media, tag)
		}
	}

	ffprobe := RequireTool(t, "ffprobe")
	out, err := exec.CommandContext(t.Context(), ffprobe, "-v", "error", "-show_entries", "packet=dts_time,size",
		"-of", "csv=p=0", fixture).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(media) {
		t.Fatalf("ffprobe sees %d packets, ReadFLV %d audio/video frames", len(lines), len(media))
	}
	// Packets come in file order, with FLV headers of 2 bytes (AAC) or 5
	// bytes (AVC) stripped, and dts in seconds.
	for i, l := range lines {
		dts, size, _ := strings.Cut(l, ",")
		n, err1 := strconv.Atoi(size)
		sec, err2 := strconv.ParseFloat(dts, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ffprobe line %q", l)
		}
		m := media[i]
		hdr := 2
		if m.TypeID == TypeVideo {
			hdr = 5
		}
		if len(m.Payload)-hdr != n || int64(m.Timestamp) != int64(sec*1000+0.5) {
			t.Fatalf("frame %d: type %d ts %d size %d, ffprobe: dts %s size %d", i, m.TypeID, m.Timestamp, len(m.Payload)-hdr, dts, n)
		}
	}
}

func TestReadFLVMissing(t *testing.T) {
	if _, err := ReadFLV(filepath.Join(t.TempDir(), "none.flv")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadFLV of a missing file: %v", err)
	}
}
