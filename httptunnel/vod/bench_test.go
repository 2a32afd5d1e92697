package vod

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
)

// longFile writes the fixture's packets n times in a row (10 s each, timestamps
// continued) as one FLV file in dir and returns its path and size.
func longFile(b *testing.B, dir string, n int) (string, int64) {
	b.Helper()
	pkts := readAll(b, openFixture(b))
	var all []*relay.Packet
	for i := range n {
		for _, p := range pkts {
			if i > 0 && (p.SeqHeader || p.Kind == relay.KindMetadata) {
				continue
			}
			all = append(all, &relay.Packet{Kind: p.Kind, Timestamp: p.Timestamp + int64(i)*10080,
				Keyframe: p.Keyframe, SeqHeader: p.SeqHeader, Payload: p.Payload})
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("long-%d.flv", n))
	data := appendTags(all)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return path, int64(len(data))
}

// BenchmarkOpen measures opening and indexing a file from the page cache (the scan
// of every tag header that NewReader does before the first packet): the fixture
// repeated to 10 minutes (about 57 MB, 15000 video and 26000 audio tags).
func BenchmarkOpen(b *testing.B) {
	path, size := longFile(b, b.TempDir(), 60)
	b.ReportAllocs()
	b.SetBytes(size)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rd, err := NewReader(f, size)
		if err != nil {
			b.Fatal(err)
		}
		if len(rd.Keyframes()) < 300 {
			b.Fatalf("%d keyframes", len(rd.Keyframes()))
		}
		f.Close()
	}
}

// BenchmarkReadPacket measures reading a file as packets after the index is built.
func BenchmarkReadPacket(b *testing.B) {
	path, size := longFile(b, b.TempDir(), 6)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rd, err := NewReader(f, size)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(size)
	for b.Loop() {
		rd.SeekTo(0)
		for {
			if _, err := rd.ReadPacket(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
