// Package flvtest holds test helpers for the browser playback packages: the repository's
// FLV fixture as hub packets. It is imported by tests only.
package flvtest

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// FixturePath returns testdata/fixture.flv of the module the test runs in, found by
// walking up from the working directory to go.mod.
func FixturePath(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "fixture.flv")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("flvtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// FixturePackets reads the fixture (H.264 + AAC, 10 s, made by testdata/gen.sh) as hub
// packets, with keyframe and sequence-header flags set as the RTMP server sets them;
// script tags (onMetaData) become KindMetadata packets.
func FixturePackets(t testing.TB) []*relay.Packet {
	t.Helper()
	f, err := os.Open(FixturePath(t))
	if err != nil {
		t.Fatalf("fixture (made by testdata/gen.sh): %v", err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	var pkts []*relay.Packet
	for {
		tg, err := r.ReadTag()
		if err == io.EOF {
			return pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		p := &relay.Packet{Timestamp: int64(tg.Timestamp), Payload: tg.Data}
		switch tg.Type {
		case flv.TagScript:
			p.Kind = relay.KindMetadata
		case flv.TagVideo:
			v, err := flv.ParseVideo(tg.Data)
			if err != nil {
				t.Fatal(err)
			}
			p.Kind, p.Keyframe, p.SeqHeader = relay.KindVideo, v.Keyframe, v.PacketType == flv.AVCSeqHeader
		case flv.TagAudio:
			a, err := flv.ParseAudio(tg.Data)
			if err != nil {
				t.Fatal(err)
			}
			p.Kind, p.SeqHeader = relay.KindAudio, a.PacketType == flv.AACSeqHeader
		default:
			continue
		}
		pkts = append(pkts, p)
	}
}
