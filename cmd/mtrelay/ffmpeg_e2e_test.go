package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// mediaPackets splits probed packets by type.
func mediaPackets(pkts []rtmptest.ProbePacket) (video, audio []rtmptest.ProbePacket) {
	for _, p := range pkts {
		switch p.CodecType {
		case "video":
			video = append(video, p)
		case "audio":
			audio = append(audio, p)
		}
	}
	return video, audio
}

// TestFFmpegPublishThreePlayers publishes the fixture with ffmpeg to three ffmpeg
// players that joined before the publisher, and checks that every packet arrives with
// its bytes, its order and its composition offset (pts-dts) intact, and decodes.
func TestFFmpegPublishThreePlayers(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	fixture := rtmptest.FixturePath(t)
	wantV, wantA := mediaPackets(rtmptest.ProbePackets(t, fixture))

	dir := t.TempDir()
	var outs []string
	var players []*rtmptest.Proc
	for i := range 3 {
		out := filepath.Join(dir, "player"+string(rune('0'+i))+".flv")
		outs = append(outs, out)
		players = append(players, rtmptest.StartRecorder(t, r.rtmpURL("live/three"), out))
	}
	// Players wait for the publisher (player-before-publisher).
	waitFor(t, 10*time.Second, "three subscribers", func() bool {
		s, ok := r.stream(t, "live/three")
		return ok && s.Subscribers["rtmp"] == 3
	})
	pub := rtmptest.StartPublisher(t, r.rtmpURL("live/three"), rtmptest.PublishOptions{ReadRate: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := pub.Wait(ctx); err != nil {
		t.Fatalf("publisher: %v\n%s", err, pub.Stderr())
	}
	for i, p := range players {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("player %d: %v\n%s", i, err, p.Stderr())
		}
	}
	for i, out := range outs {
		gotV, gotA := mediaPackets(rtmptest.ProbePackets(t, out))
		if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
			t.Errorf("player %d: got %d video %d audio packets, want %d and %d", i, len(gotV), len(gotA), len(wantV), len(wantA))
			continue
		}
		if !gotV[0].Keyframe {
			t.Errorf("player %d: first video packet is not a keyframe", i)
		}
		for j := range wantV {
			g, w := gotV[j], wantV[j]
			if g.DataHash != w.DataHash || g.Keyframe != w.Keyframe || g.PTS-g.DTS != w.PTS-w.DTS {
				t.Errorf("player %d video packet %d: got %s key=%v cts=%d, want %s key=%v cts=%d",
					i, j, g.DataHash, g.Keyframe, g.PTS-g.DTS, w.DataHash, w.Keyframe, w.PTS-w.DTS)
				break
			}
			if j > 0 && g.DTS-gotV[0].DTS != w.DTS-wantV[0].DTS {
				t.Errorf("player %d video packet %d: dts offset %d, want %d", i, j, g.DTS-gotV[0].DTS, w.DTS-wantV[0].DTS)
				break
			}
		}
		for j := range wantA {
			if gotA[j].DataHash != wantA[j].DataHash {
				t.Errorf("player %d audio packet %d differs", i, j)
				break
			}
		}
		v, a := rtmptest.DecodeFrames(t, out)
		if v != len(wantV) || a != len(wantA) {
			t.Errorf("player %d: decoded %d video %d audio frames, want %d and %d", i, v, a, len(wantV), len(wantA))
		}
	}
}
