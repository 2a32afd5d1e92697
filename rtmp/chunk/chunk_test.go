package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

// testCase is one chunk stream and what the Reader must make of it. The same
// table drives TestReader (decode), TestAppendMessage (encode, for canonical
// cases) and the FuzzReader seeds.
type testCase struct {
	name string
	cfg  ReaderConfig
	wire []byte    // bytes as a peer sends them
	want []Message // messages ReadMessage returns, in order
	// err is what ReadMessage returns after want: nil means a clean io.EOF.
	err error
	// canonical: wire is exactly what AppendMessage produces for want,
	// starting at chunk size 128 and following the Set Chunk Size messages in want.
	canonical bool
}

// Chunk building helpers for hand-written wires (RTMP 1.0 §5.3.1).

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u24(v uint32) []byte { return []byte{byte(v >> 16), byte(v >> 8), byte(v)} }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func basic(format byte, csid uint32) []byte { return appendBasicHeader(nil, format, csid) }

// hdr0 is a type 0 chunk header; ts >= 0xFFFFFF adds the extended timestamp.
func hdr0(csid, ts, length uint32, typeID uint8, sid uint32) []byte {
	b := cat(basic(0, csid), u24(min(ts, 0xFFFFFF)), u24(length), []byte{typeID},
		binary.LittleEndian.AppendUint32(nil, sid))
	if ts >= 0xFFFFFF {
		b = append(b, be32(ts)...)
	}
	return b
}

// hdr1 is a type 1 chunk header; delta >= 0xFFFFFF adds the extended timestamp.
func hdr1(csid, delta, length uint32, typeID uint8) []byte {
	b := cat(basic(1, csid), u24(min(delta, 0xFFFFFF)), u24(length), []byte{typeID})
	if delta >= 0xFFFFFF {
		b = append(b, be32(delta)...)
	}
	return b
}

// hdr2 is a type 2 chunk header; delta >= 0xFFFFFF adds the extended timestamp.
func hdr2(csid, delta uint32) []byte {
	b := cat(basic(2, csid), u24(min(delta, 0xFFFFFF)))
	if delta >= 0xFFFFFF {
		b = append(b, be32(delta)...)
	}
	return b
}

// hdr3 is a type 3 chunk header; ext != nil is the repeated extended timestamp.
func hdr3(csid uint32, ext []byte) []byte { return cat(basic(3, csid), ext) }

// pay returns n bytes of a recognisable pattern starting at seed.
func pay(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// enc encodes msgs with AppendMessage, starting at chunk size 128 and
// switching after each Set Chunk Size message, as a well-behaved peer does.
func enc(msgs ...Message) []byte {
	var b []byte
	size := uint32(DefaultChunkSize)
	for _, m := range msgs {
		b = AppendMessage(b, size, m.CSID, m.TypeID, m.StreamID, m.Timestamp, m.Payload)
		if m.TypeID == TypeSetChunkSize && len(m.Payload) >= 4 {
			size = binary.BigEndian.Uint32(m.Payload)
		}
	}
	return b
}

func setChunkSize(size uint32) Message {
	return Message{CSID: 2, TypeID: TypeSetChunkSize, Payload: be32(size)}
}

func abort(csid uint32) Message { return Message{CSID: 2, TypeID: TypeAbort, Payload: be32(csid)} }

// canon makes a canonical case: wire is enc(msgs...).
func canon(name string, msgs ...Message) testCase {
	return testCase{name: name, wire: enc(msgs...), want: msgs, canonical: true}
}

var cases = buildCases()

func buildCases() []testCase {
	video := func(csid, ts uint32, p []byte) Message {
		return Message{CSID: csid, TypeID: 9, StreamID: 1, Timestamp: ts, Payload: p}
	}
	cs := []testCase{
		canon("type0 small", video(6, 40, pay(1, 10))),
		canon("zero length", video(6, 0, []byte{}), video(6, 5, pay(0, 3))),
		canon("exactly one chunk", video(6, 1, pay(2, 128))),
		canon("two chunks", video(6, 1, pay(3, 129))),
		canon("many chunks", video(6, 1, pay(4, 1000))),
		canon("csid 63", video(63, 7, pay(5, 200))),
		canon("csid 64 two byte basic header", video(64, 7, pay(5, 200))),
		canon("csid 319", video(319, 7, pay(5, 200))),
		canon("csid 320 three byte basic header", video(320, 7, pay(5, 200))),
		canon("csid 65599", video(65599, 7, pay(5, 200))),
		canon("stream id little endian", Message{CSID: 4, TypeID: 20, StreamID: 0x01020304, Payload: pay(9, 5)}),
		canon("set chunk size 4096", setChunkSize(4096), video(6, 0, pay(6, 5000)), video(6, 33, pay(7, 10000))),
		canon("set chunk size 1", setChunkSize(1), video(6, 0, pay(6, 3)), Message{CSID: 2, TypeID: 5, Payload: be32(2500000)}),
		canon("set chunk size max", setChunkSize(DefaultMaxChunkSize), video(6, 0, pay(6, 300))),
		canon("abort with nothing pending", abort(6), video(6, 1, pay(1, 1))),
	}
	for _, ts := range []uint32{0xFFFFFE, 0xFFFFFF, 0x1000000, 0xFFFFFFFF} {
		cs = append(cs, canon(fmt.Sprintf("type0 ts %#x three chunks", ts), video(6, ts, pay(8, 300))))
	}

	// Type 3 chunks carry the extended timestamp of the type 0 header
	// (what ffmpeg/OBS send): without reading it, the payload shifts by 4.
	p := pay(10, 200)
	cs = append(cs, testCase{
		name: "type3 continuation with extended timestamp",
		wire: cat(hdr0(4, 0x12345678, 200, 9, 1), p[:128], hdr3(4, be32(0x12345678)), p[128:]),
		want: []Message{video(4, 0x12345678, p)},
	})

	// Type 1 and 2 deltas accumulate; a type 3 starting a new message
	// reuses the last delta.
	cs = append(cs, testCase{
		name: "type1 type2 type3 deltas",
		wire: cat(
			hdr0(4, 1000, 2, 8, 1), pay(1, 2),
			hdr1(4, 23, 3, 9), pay(2, 3), // 1023, new length and type
			hdr2(4, 21), pay(3, 3), // 1044
			hdr3(4, nil), pay(4, 3), // 1065, delta 21 again
			hdr3(4, nil), pay(5, 3), // 1086
		),
		want: []Message{
			{CSID: 4, TypeID: 8, StreamID: 1, Timestamp: 1000, Payload: pay(1, 2)},
			{CSID: 4, TypeID: 9, StreamID: 1, Timestamp: 1023, Payload: pay(2, 3)},
			{CSID: 4, TypeID: 9, StreamID: 1, Timestamp: 1044, Payload: pay(3, 3)},
			{CSID: 4, TypeID: 9, StreamID: 1, Timestamp: 1065, Payload: pay(4, 3)},
			{CSID: 4, TypeID: 9, StreamID: 1, Timestamp: 1086, Payload: pay(5, 3)},
		},
	})
	cs = append(cs, testCase{
		name: "type3 after type0 uses the type0 timestamp as delta",
		wire: cat(hdr0(4, 40, 1, 8, 1), pay(1, 1), hdr3(4, nil), pay(2, 1)),
		want: []Message{
			{CSID: 4, TypeID: 8, StreamID: 1, Timestamp: 40, Payload: pay(1, 1)},
			{CSID: 4, TypeID: 8, StreamID: 1, Timestamp: 80, Payload: pay(2, 1)},
		},
	})
	p = pay(20, 130)
	cs = append(cs, testCase{
		name: "extended deltas on type1 type2 and type3",
		wire: cat(
			hdr0(5, 10, 1, 9, 1), pay(1, 1),
			hdr1(5, 0x1000000, 130, 9), p[:128], hdr3(5, be32(0x1000000)), p[128:], // 0x100000A
			hdr2(5, 0xFFFFFF), pay(3, 128), hdr3(5, be32(0xFFFFFF)), pay(4, 2), // 0x2000009
			hdr3(5, be32(0xFFFFFF)), pay(5, 128), hdr3(5, be32(0xFFFFFF)), pay(6, 2), // 0x3000008
			hdr2(5, 1), pay(7, 128), hdr3(5, nil), pay(8, 2), // back to plain: 0x3000009
		),
		want: []Message{
			video(5, 10, pay(1, 1)),
			video(5, 0x100000A, p),
			video(5, 0x2000009, cat(pay(3, 128), pay(4, 2))),
			video(5, 0x3000008, cat(pay(5, 128), pay(6, 2))),
			video(5, 0x3000009, cat(pay(7, 128), pay(8, 2))),
		},
	})
	cs = append(cs, testCase{
		name: "timestamp wraps at 32 bits",
		wire: cat(hdr0(4, 0xFFFFFFF0, 1, 8, 1), pay(1, 1), hdr2(4, 0x20), pay(2, 1)),
		want: []Message{
			{CSID: 4, TypeID: 8, StreamID: 1, Timestamp: 0xFFFFFFF0, Payload: pay(1, 1)},
			{CSID: 4, TypeID: 8, StreamID: 1, Timestamp: 0x10, Payload: pay(2, 1)},
		},
	})

	// Interleaving: chunks of messages on different csids alternate; each
	// message is returned when its last chunk arrives.
	a, v := pay(30, 300), pay(40, 200)
	cs = append(cs, testCase{
		name: "interleaved csids",
		wire: cat(
			hdr0(6, 100, 300, 9, 1), a[:128],
			hdr0(4, 90, 200, 8, 1), v[:128],
			hdr3(6, nil), a[128:256],
			hdr3(4, nil), v[128:],
			hdr3(6, nil), a[256:],
		),
		want: []Message{
			{CSID: 4, TypeID: 8, StreamID: 1, Timestamp: 90, Payload: v},
			{CSID: 6, TypeID: 9, StreamID: 1, Timestamp: 100, Payload: a},
		},
	})
	p = pay(50, 1000)
	cs = append(cs, testCase{
		name: "set chunk size in the middle of a message",
		wire: cat(hdr0(6, 0, 1000, 9, 1), p[:128], enc(setChunkSize(4096)), hdr3(6, nil), p[128:]),
		want: []Message{setChunkSize(4096), video(6, 0, p)},
	})
	cs = append(cs, testCase{
		name: "abort discards the partial message",
		// After the abort the type 3 chunk starts a new message (ts 10+10)
		// instead of continuing the aborted one.
		wire: cat(hdr0(6, 10, 300, 9, 1), p[:128], enc(abort(6)), hdr3(6, nil), a[:128], hdr3(6, nil), a[128:256], hdr3(6, nil), a[256:]),
		want: []Message{abort(6), video(6, 20, a)},
	})
	cs = append(cs, testCase{
		name: "new header mid-message restarts it",
		wire: cat(hdr0(6, 0, 1000, 9, 1), p[:128], hdr0(6, 7, 2, 8, 1), pay(3, 2)),
		want: []Message{{CSID: 6, TypeID: 8, StreamID: 1, Timestamp: 7, Payload: pay(3, 2)}},
	})

	// Errors.
	cs = append(cs,
		testCase{name: "message above MaxMessageSize", wire: hdr0(6, 0, 0xFFFFFF, 9, 1), err: ErrMessageTooLarge},
		testCase{name: "message above configured limit", cfg: ReaderConfig{MaxMessageSize: 100},
			wire: cat(enc(video(6, 0, pay(1, 100))), hdr0(6, 0, 101, 9, 1)), want: []Message{video(6, 0, pay(1, 100))}, err: ErrMessageTooLarge},
		testCase{name: "set chunk size 0", wire: enc(setChunkSize(0)), err: ErrBadChunkSize},
		testCase{name: "set chunk size top bit", wire: enc(setChunkSize(0x80000080)), err: ErrBadChunkSize},
		testCase{name: "set chunk size above MaxChunkSize", wire: enc(setChunkSize(DefaultMaxChunkSize + 1)), err: ErrBadChunkSize},
		testCase{name: "set chunk size short", wire: enc(Message{CSID: 2, TypeID: TypeSetChunkSize, Payload: []byte{0, 0, 16}}), err: ErrShortControlMessage},
		testCase{name: "abort short", wire: enc(Message{CSID: 2, TypeID: TypeAbort}), err: ErrShortControlMessage},
		testCase{name: "type1 without previous header", wire: cat(hdr1(4, 0, 1, 8), pay(1, 1)), err: ErrNoPreviousHeader},
		testCase{name: "type2 without previous header", wire: cat(hdr2(4, 0), pay(1, 1)), err: ErrNoPreviousHeader},
		testCase{name: "type3 without previous header", wire: cat(hdr3(4, nil), pay(1, 1)), err: ErrNoPreviousHeader},
		testCase{name: "type3 on another csid", wire: cat(enc(video(4, 0, pay(1, 1))), hdr3(5, nil), pay(1, 1)),
			want: []Message{video(4, 0, pay(1, 1))}, err: ErrNoPreviousHeader},
		testCase{name: "eof in basic header", wire: []byte{0x00}, err: io.ErrUnexpectedEOF},
		testCase{name: "eof in message header", wire: hdr0(6, 0, 10, 9, 1)[:5], err: io.ErrUnexpectedEOF},
		testCase{name: "eof in extended timestamp", wire: hdr0(6, 0xFFFFFFFF, 10, 9, 1)[:14], err: io.ErrUnexpectedEOF},
		testCase{name: "eof in payload", wire: cat(hdr0(6, 0, 10, 9, 1), pay(1, 5)), err: io.ErrUnexpectedEOF},
		testCase{name: "eof between chunks of a message", wire: cat(hdr0(6, 0, 200, 9, 1), pay(1, 128)), err: io.EOF},
	)
	var many []byte
	var manyWant []Message
	for id := uint32(2); id < 2+4; id++ {
		m := Message{CSID: id, TypeID: 8, Payload: []byte{}}
		many = append(many, enc(m)...)
		manyWant = append(manyWant, m)
	}
	cs = append(cs, testCase{name: "too many chunk streams", cfg: ReaderConfig{MaxChunkStreams: 3},
		wire: many, want: manyWant[:3], err: ErrTooManyChunkStreams})
	return cs
}

// readAll reads messages until the first error.
func readAll(r io.Reader, cfg ReaderConfig) ([]Message, error) {
	cr := NewReader(r, cfg)
	var got []Message
	for {
		m, err := cr.ReadMessage()
		if err != nil {
			return got, err
		}
		got = append(got, *m)
	}
}

// checkMessages compares decoded messages with want.
func checkMessages(t *testing.T, got, want []Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.CSID != w.CSID || g.TypeID != w.TypeID || g.StreamID != w.StreamID || g.Timestamp != w.Timestamp {
			t.Errorf("message %d: got csid %d type %d stream %d ts %#x, want csid %d type %d stream %d ts %#x",
				i, g.CSID, g.TypeID, g.StreamID, g.Timestamp, w.CSID, w.TypeID, w.StreamID, w.Timestamp)
		}
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("message %d: payload of %d bytes differs from want (%d bytes)", i, len(g.Payload), len(w.Payload))
		}
		if g.Payload == nil {
			t.Errorf("message %d: nil payload", i)
		}
	}
}

// readers returns the ways TestReader feeds each wire to the Reader.
func readers(wire []byte) map[string]io.Reader {
	rs := map[string]io.Reader{
		"whole":    bytes.NewReader(wire),
		"one byte": iotest.OneByteReader(bytes.NewReader(wire)),
		"half":     iotest.HalfReader(bytes.NewReader(wire)),
		"data err": iotest.DataErrReader(bytes.NewReader(wire)),
	}
	return rs
}

func TestReader(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErr := tc.err
			if wantErr == nil {
				wantErr = io.EOF
			}
			check := func(t *testing.T, r io.Reader) {
				t.Helper()
				got, err := readAll(r, tc.cfg)
				if !errors.Is(err, wantErr) {
					t.Fatalf("error %v, want %v", err, wantErr)
				}
				if wantErr == io.EOF && err != io.EOF {
					t.Fatalf("clean end returned %#v, want io.EOF as is", err)
				}
				checkMessages(t, got, tc.want)
			}
			for name, r := range readers(tc.wire) {
				t.Run(name, func(t *testing.T) { check(t, r) })
			}
			// Arbitrary split points: every one for short wires, a spread for long ones.
			step := max(1, len(tc.wire)/64)
			for i := 0; i <= len(tc.wire); i += step {
				check(t, io.MultiReader(bytes.NewReader(tc.wire[:i]), bytes.NewReader(tc.wire[i:])))
			}
		})
	}
}

func TestAppendMessage(t *testing.T) {
	for _, tc := range cases {
		if !tc.canonical {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			// tc.wire was built by enc; rebuild it by hand-written headers
			// where possible to check AppendMessage against the spec.
			var want []byte
			size := uint32(DefaultChunkSize)
			for _, m := range tc.want {
				ext := []byte(nil)
				if m.Timestamp >= 0xFFFFFF {
					ext = be32(m.Timestamp)
				}
				n := min(uint32(len(m.Payload)), size)
				want = append(want, hdr0(m.CSID, m.Timestamp, uint32(len(m.Payload)), m.TypeID, m.StreamID)...)
				want = append(want, m.Payload[:n]...)
				for rest := m.Payload[n:]; len(rest) > 0; {
					n := min(uint32(len(rest)), size)
					want = append(want, hdr3(m.CSID, ext)...)
					want = append(want, rest[:n]...)
					rest = rest[n:]
				}
				if m.TypeID == TypeSetChunkSize {
					size = binary.BigEndian.Uint32(m.Payload)
				}
			}
			if !bytes.Equal(tc.wire, want) {
				t.Fatalf("AppendMessage wrote\n%x\nwant\n%x", tc.wire, want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 127, 128, 129, 4096, 100000} {
		for _, chunkSize := range []uint32{1, 128, 4096} {
			for _, ts := range []uint32{0, 1, 0xFFFFFE, 0xFFFFFF, 0x1000000, 0xFFFFFFFF} {
				for _, csid := range []uint32{2, 3, 64, 65599} {
					name := fmt.Sprintf("size=%d/chunk=%d/ts=%#x/csid=%d", size, chunkSize, ts, csid)
					if testing.Short() && size == 100000 && chunkSize == 1 {
						continue
					}
					t.Run(name, func(t *testing.T) {
						payload := pay(byte(size), size)
						prefix := enc(setChunkSize(chunkSize))
						wire := AppendMessage(prefix, chunkSize, csid, 9, 1, ts, payload)
						if n := len(wire) - len(prefix); n != EncodedLen(chunkSize, csid, ts, size) {
							t.Fatalf("wrote %d bytes, EncodedLen says %d", n, EncodedLen(chunkSize, csid, ts, size))
						}
						r := NewReader(bytes.NewReader(wire), ReaderConfig{})
						if _, err := r.ReadMessage(); err != nil {
							t.Fatal(err)
						}
						m, err := r.ReadMessage()
						if err != nil {
							t.Fatal(err)
						}
						checkMessages(t, []Message{*m}, []Message{{CSID: csid, TypeID: 9, StreamID: 1, Timestamp: ts, Payload: payload}})
						if _, err := r.ReadMessage(); err != io.EOF {
							t.Fatalf("after the message: %v, want io.EOF", err)
						}
						if r.BytesRead() != uint64(len(wire)) {
							t.Errorf("BytesRead %d, want %d", r.BytesRead(), len(wire))
						}
						if r.ChunkSize() != chunkSize {
							t.Errorf("ChunkSize %d, want %d", r.ChunkSize(), chunkSize)
						}
					})
				}
			}
		}
	}
}

func TestStickyError(t *testing.T) {
	r := NewReader(bytes.NewReader(cat(hdr1(4, 0, 1, 8), pay(1, 1), enc(Message{CSID: 4, TypeID: 8, Payload: []byte{1}}))), ReaderConfig{})
	_, err1 := r.ReadMessage()
	_, err2 := r.ReadMessage()
	if !errors.Is(err1, ErrNoPreviousHeader) || err2 != err1 {
		t.Fatalf("errors %v then %v, want the same ErrNoPreviousHeader twice", err1, err2)
	}
}

// TestPayloadNotShared checks that every message gets its own payload.
func TestPayloadNotShared(t *testing.T) {
	wire := enc(
		Message{CSID: 4, TypeID: 9, Payload: pay(1, 300)},
		Message{CSID: 4, TypeID: 9, Payload: pay(2, 300)},
	)
	r := NewReader(bytes.NewReader(wire), ReaderConfig{})
	m1, _ := r.ReadMessage()
	m2, _ := r.ReadMessage()
	m1.Payload[0] = 0xAA
	if m2.Payload[0] != 2 || cap(m1.Payload) != 300 {
		t.Fatal("payloads share memory or have spare capacity")
	}
}

// TestLargeMessagesGrow checks that a peer declaring large messages and
// abandoning them cannot make the reader allocate much more than it sends.
func TestLargeMessagesGrow(t *testing.T) {
	var wire []byte
	const n = 40
	for id := uint32(2); id < 2+n; id++ {
		wire = append(wire, hdr0(id, 0, 8<<20, 9, 1)...)
		wire = append(wire, pay(1, 128)...)
	}
	for range 1000 { // restart the message on csid 2 again and again
		wire = append(wire, hdr2(2, 1)...)
		wire = append(wire, pay(1, 128)...)
	}
	var allocated uint64
	r := NewReader(bytes.NewReader(wire), ReaderConfig{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated = after.TotalAlloc - before.TotalAlloc
	if limit := uint64(len(wire)) * 20; allocated > limit {
		t.Fatalf("reader allocated %d bytes for %d bytes of input, want <= %d", allocated, len(wire), limit)
	}
	var held int
	for _, cs := range r.streams {
		held += len(cs.buf)
	}
	if limit := 3 * len(wire); held > limit {
		t.Fatalf("reader holds %d bytes after %d bytes of input, want <= %d", held, len(wire), limit)
	}
}

// TestSteadyStreamOneAlloc checks that after the first large message, same
// size messages get one exact payload allocation each.
func TestSteadyStreamOneAlloc(t *testing.T) {
	var wire []byte
	for i := range 5 {
		wire = AppendMessage(wire, 128, 6, 9, 1, uint32(i), pay(0, 200<<10))
	}
	r := NewReader(bytes.NewReader(wire), ReaderConfig{})
	r.ReadMessage()
	for range 4 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := r.ReadMessage()
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > uint64(len(m.Payload))+4096 {
			t.Fatalf("allocated %d bytes for a %d byte message", got, len(m.Payload))
		}
	}
}

func TestAppendMessageNoAlloc(t *testing.T) {
	payload := pay(0, 64<<10)
	dst := make([]byte, 0, EncodedLen(128, 6, 0xFFFFFFFF, len(payload)))
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendMessage(dst[:0], 128, 6, 9, 1, 0xFFFFFFFF, payload)
	})
	if allocs != 0 {
		t.Fatalf("AppendMessage allocated %v times with room in dst", allocs)
	}
}

// loopReader repeats b forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// TestReaderAllocs checks the reader allocates only the Message and its
// payload per message, however many chunks it spans.
func TestReaderAllocs(t *testing.T) {
	wire := AppendMessage(nil, 128, 6, 9, 1, 0x1000000, pay(0, 60<<10))
	r := NewReader(&loopReader{b: wire}, ReaderConfig{})
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("ReadMessage allocated %v times per message, want <= 2", allocs)
	}
}

func TestAppendMessagePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"chunk size 0": func() { AppendMessage(nil, 0, 3, 9, 1, 0, nil) },
		"csid 1":       func() { AppendMessage(nil, 128, 1, 9, 1, 0, nil) },
		"csid 65600":   func() { EncodedLen(128, 65600, 0, 0) },
		"payload 16M":  func() { AppendMessage(nil, 128, 3, 9, 1, 0, make([]byte, 1<<24)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}
