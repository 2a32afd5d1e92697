package flv

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// cases drives the round-trip tests and seeds the fuzz targets.
var cases = []struct {
	name string
	tags []Tag
}{
	{"empty", nil},
	{"script", []Tag{{Type: TagScript, Timestamp: 0, Data: []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}}}},
	{"av", []Tag{
		{Type: TagVideo, Timestamp: 0, Data: []byte{0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x4d, 1, 0, 2, 0x68, 0xee}},
		{Type: TagAudio, Timestamp: 0, Data: []byte{0xaf, 0, 0x12, 0x10}},
		{Type: TagVideo, Timestamp: 40, Data: []byte{0x17, 1, 0, 0, 0x50, 0, 0, 0, 2, 0x65, 0x88}},
		{Type: TagAudio, Timestamp: 23, Data: []byte{0xaf, 1, 0x21, 0x10, 0x05}},
	}},
	{"extended-timestamp", []Tag{{Type: TagVideo, Timestamp: 0x01234567, Data: []byte{0x27, 1, 0xff, 0xff, 0xf6, 0, 0, 0, 1, 0x41}}}},
	{"no-payload", []Tag{{Type: TagAudio, Timestamp: 5}}},
}

func encode(t testing.TB, tags []Tag) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(Header(true, true))
	var b Batch
	for _, tg := range tags {
		if err := b.Add(tg.Type, int64(tg.Timestamp), tg.Data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(r io.Reader) ([]Tag, error) {
	fr := NewReader(r)
	var tags []Tag
	for {
		tg, err := fr.ReadTag()
		if err == io.EOF {
			return tags, nil
		}
		if err != nil {
			return tags, err
		}
		tags = append(tags, tg)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := encode(t, c.tags)
			for name, r := range map[string]io.Reader{"whole": bytes.NewReader(b), "one-byte": iotest.OneByteReader(bytes.NewReader(b))} {
				got, err := decode(r)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if len(got) != len(c.tags) {
					t.Fatalf("%s: %d tags, want %d", name, len(got), len(c.tags))
				}
				for i := range got {
					want := c.tags[i]
					if want.Data == nil {
						want.Data = []byte{}
					}
					if !reflect.DeepEqual(got[i], want) {
						t.Errorf("%s: tag %d = %+v, want %+v", name, i, got[i], want)
					}
				}
			}
		})
	}
}

// TestHeaderLayout checks the header bytes against FLV 10.1 E.2 and E.4.1.
func TestHeaderLayout(t *testing.T) {
	t.Parallel()
	h := Header(true, true)
	if !bytes.Equal(h, []byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")) {
		t.Fatalf("header % x", h)
	}
	var hdr [TagHeaderSize]byte
	PutTagHeader(hdr[:], TagVideo, 0x010203, 0x7f_a1b2c3)
	if want := []byte{9, 1, 2, 3, 0xa1, 0xb2, 0xc3, 0x7f, 0, 0, 0}; !bytes.Equal(hdr[:], want) {
		t.Fatalf("tag header % x, want % x", hdr, want)
	}
}

// TestBatchSharesPayload checks that a batch references payload bytes instead of
// copying them, and that a reused batch allocates nothing.
func TestBatchSharesPayload(t *testing.T) { // not parallel: AllocsPerRun
	payload := make([]byte, 1000)
	var b Batch
	for range 3 {
		if err := b.Add(TagVideo, 1, payload); err != nil {
			t.Fatal(err)
		}
	}
	bufs := b.AppendBuffers(nil)
	if len(bufs) != 9 || &bufs[1][0] != &payload[0] {
		t.Fatalf("payload not referenced: %d buffers", len(bufs))
	}
	b.Reset()
	allocs := testing.AllocsPerRun(100, func() {
		for range 32 {
			_ = b.Add(TagVideo, 1, payload)
		}
		_, _ = b.WriteTo(io.Discard)
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per batch of 32 tags, want 0", allocs)
	}
}

func TestBatchTooLarge(t *testing.T) {
	t.Parallel()
	var b Batch
	if err := b.Add(TagVideo, 0, make([]byte, MaxDataSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestWritev checks that a batch goes out over TCP and reads back intact.
func TestWritev(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := encode(t, cases[2].tags)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(Header(true, true))
		var b Batch
		for _, tg := range cases[2].tags {
			b.Add(tg.Type, int64(tg.Timestamp), tg.Data)
		}
		b.WriteTo(c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (err %v), want %d identical", len(got), err, len(want))
	}
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	good := encode(t, cases[2].tags)
	for name, in := range map[string][]byte{
		"signature": append([]byte("XLV"), good[3:]...),
		"truncated": good[:len(good)-3],
		"prev-size": append(append([]byte{}, good[:len(good)-1]...), 0xff),
	} {
		if _, err := decode(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, c := range cases {
		f.Add(encode(f, c.tags))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tags, err := decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		// Round trip: what decodes must encode and decode to the same tags.
		again, err := decode(bytes.NewReader(encode(t, tags)))
		if err != nil || len(again) != len(tags) {
			t.Fatalf("re-decode: %d tags, err %v; want %d", len(again), err, len(tags))
		}
		// The reader gives the same result whatever the read sizes.
		split, err := decode(iotest.HalfReader(bytes.NewReader(in)))
		if err != nil || len(split) != len(tags) {
			t.Fatalf("half reads: %d tags, err %v; want %d", len(split), err, len(tags))
		}
	})
}

// TestImports enforces doc.go: flv imports only the standard library.
func TestImports(t *testing.T) {
	t.Parallel()
	for _, dep := range relaytest.Deps(t, ".") {
		if dep != "github.com/mtrelay/mtrelay/httptunnel/flv" {
			t.Errorf("flv depends on %s; only the standard library is allowed", dep)
		}
	}
}
