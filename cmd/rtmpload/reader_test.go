package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/mtrelay/mtrelay/rtmp/chunk"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestRTMPReader feeds the lean chunk reader the fixture chunked by
// rtmp/chunk's writer, at chunk size 128 and then, after Set Chunk Size,
// 4096, with timestamps that need the extended field, and checks every
// message's type, timestamp and key.
func TestRTMPReader(t *testing.T) {
	in, err := loadInput(rtmptest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	const ext = 0x1000000 // above 0xFFFFFF: extended timestamps on every header
	var b []byte
	size := uint32(chunk.DefaultChunkSize)
	for i, tag := range in.tags {
		if i == len(in.tags)/2 {
			b = chunk.AppendMessage(b, size, csidControl, typeSetChunkSize, 0, 0, binary.BigEndian.AppendUint32(nil, 4096))
			size = 4096
		}
		csid := uint32(4 + tag.TypeID%3) // audio, video and data on their own chunk streams
		b = chunk.AppendMessage(b, size, csid, tag.TypeID, 1, tag.Timestamp+ext, tag.Payload)
	}
	r := newRTMPReader(bufio.NewReaderSize(iotestHalfReader{bytes.NewReader(b)}, readBufferSize))
	var m rtmpMsg
	for i, tag := range in.tags {
		if i == len(in.tags)/2 {
			if err := r.next(&m); err != nil || m.typeID != typeSetChunkSize {
				t.Fatalf("set chunk size: type %d, %v", m.typeID, err)
			}
		}
		if err := r.next(&m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.typeID != tag.TypeID || m.timestamp != tag.Timestamp+ext || m.key != in.keys[i] || int(m.length) != len(tag.Payload) {
			t.Fatalf("message %d: type %d ts %d len %d key %x, want %d %d %d %x",
				i, m.typeID, m.timestamp, m.length, m.key, tag.TypeID, tag.Timestamp+ext, len(tag.Payload), in.keys[i])
		}
	}
	if err := r.next(&m); !errors.Is(err, io.EOF) {
		t.Errorf("after the last message: %v, want EOF", err)
	}
	if r.n != uint64(len(b)) {
		t.Errorf("counted %d bytes, read %d", r.n, len(b))
	}
}

// iotestHalfReader returns at most half of what each Read asks for, so
// chunks straddle the bufio buffer's refills.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) { return h.r.Read(p[:(len(p)+1)/2]) }

// TestHTTPFLVSource serves the fixture as an HTTP-FLV body and checks the
// player reads every audio and video tag with the key the publisher
// computes for it.
func TestHTTPFLVSource(t *testing.T) {
	path := rtmptest.FixturePath(t)
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := loadInput(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live/s.flv" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/x-flv")
		_, _ = w.Write(body)
	}))
	defer srv.Close()

	src, err := dialHTTPFLV(t.Context(), srv.URL+"/live/s.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	var f frame
	n := 0
	for i, tag := range in.tags {
		if tag.TypeID != typeAudio && tag.TypeID != typeVideo {
			continue
		}
		if err := src.nextFrame(&f); err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
		if f.typeID != tag.TypeID || f.key != in.keys[i] || f.length != len(tag.Payload) {
			t.Fatalf("tag %d: type %d key %x len %d, want %d %x %d", i, f.typeID, f.key, f.length, tag.TypeID, in.keys[i], len(tag.Payload))
		}
		n++
	}
	if err := src.nextFrame(&f); !errors.Is(err, io.EOF) {
		t.Errorf("after %d frames: %v, want EOF", n, err)
	}
	if src.bytesRead() != uint64(len(body)) {
		t.Errorf("counted %d bytes, body has %d", src.bytesRead(), len(body))
	}

	if _, err := dialHTTPFLV(t.Context(), srv.URL+"/live/missing.flv"); err == nil {
		t.Error("404 accepted")
	}
}
