package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestFFmpegPublishThreePlayers publishes the fixture with ffmpeg to three ffmpeg
// players that joined before the publisher, and checks that every packet arrives with
// its bytes, its order and its composition offset (pts-dts) intact, and decodes. It runs
// with the publisher on RTMP and on RTMPT, and players on both, mixed on one stream.
func TestFFmpegPublishThreePlayers(t *testing.T) {
	t.Parallel()
	for _, pubT := range []string{"rtmp", "rtmpt"} {
		t.Run("publish="+pubT, func(t *testing.T) {
			t.Parallel()
			testThreePlayers(t, pubT, []string{"rtmp", "rtmpt", pubT})
		})
	}
}

func testThreePlayers(t *testing.T, pubT string, playT []string) {
	r := startRelay(t)
	fixture := rtmptest.FixturePath(t)
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, fixture))

	dir := t.TempDir()
	var outs []string
	var players []*rtmptest.Proc
	want := map[string]int{}
	for i, tr := range playT {
		out := filepath.Join(dir, "player"+string(rune('0'+i))+"-"+tr+".flv")
		outs = append(outs, out)
		players = append(players, rtmptest.StartRecorder(t, r.url(tr, "live/three"), out))
		want[tr]++
	}
	// Players wait for the publisher (player-before-publisher).
	waitFor(t, 10*time.Second, "three subscribers", func() bool {
		s, ok := r.stream(t, "live/three")
		return ok && s.Subscribers["rtmp"] == want["rtmp"] && s.Subscribers["rtmpt"] == want["rtmpt"]
	})
	pub := rtmptest.StartPublisher(t, r.url(pubT, "live/three"), rtmptest.PublishOptions{ReadRate: 2, ExtraArgs: publishArgs(pubT)})
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
		gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
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

// publishArgs are ffmpeg output options for a publisher over transport. ffmpeg's RTMPT
// client sends its buffered packets only every rtmp_flush_interval packets (10) and
// discards what is still buffered when it closes (rtmphttp.c), so the last few packets
// of a file never leave it; flushing every packet makes the whole file arrive.
func publishArgs(transport string) []string {
	if transport == "rtmpt" {
		return []string{"-rtmp_flush_interval", "1"}
	}
	return nil
}
