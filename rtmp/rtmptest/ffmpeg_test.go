package rtmptest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fixture's expected shape; testdata/README.md documents the same
// numbers. If testdata/gen.sh changes, update both.
const (
	fixtureVideoPackets = 250 // 10 s at 25 fps
	fixtureAudioPackets = 432 // 10 s at 44100/1024 packets per second, plus priming
	fixtureKeyframes    = 5   // GOP 50 frames = 2 s
)

func TestFixtureStreams(t *testing.T) {
	t.Parallel()
	streams := ProbeStreams(t, FixturePath(t))
	if len(streams) != 2 {
		t.Fatalf("fixture has %d streams, want 2: %+v", len(streams), streams)
	}
	v, a := streams[0], streams[1]
	if v.CodecType != "video" || v.CodecName != "h264" || v.Profile != "Main" ||
		v.Width != 640 || v.Height != 360 || v.PixFmt != "yuv420p" || v.AvgFrameRate != "25/1" {
		t.Errorf("video stream = %+v, want h264 Main 640x360 yuv420p 25/1", v)
	}
	if v.HasBFrames == 0 {
		t.Errorf("video stream has_b_frames = 0, want B-frames")
	}
	if a.CodecType != "audio" || a.CodecName != "aac" || a.Profile != "LC" ||
		a.SampleRate != 44100 || a.Channels != 2 {
		t.Errorf("audio stream = %+v, want aac LC 44100 Hz stereo", a)
	}
	if v.TimeBase != "1/1000" || a.TimeBase != "1/1000" {
		t.Errorf("time bases = %s, %s, want FLV's 1/1000", v.TimeBase, a.TimeBase)
	}
}

func TestFixturePackets(t *testing.T) {
	t.Parallel()
	pkts := ProbePackets(t, FixturePath(t))
	var video, audio, reordered, ctsNonZero int
	var keyDTS []int64
	lastPTS := int64(NoTS)
	for _, p := range pkts {
		if p.PTS == NoTS || p.DTS == NoTS {
			t.Fatalf("packet without timestamps: %+v", p)
		}
		if p.DataHash == "" || p.Size == 0 {
			t.Fatalf("packet without size or hash: %+v", p)
		}
		switch p.CodecType {
		case "video":
			video++
			if p.Keyframe {
				keyDTS = append(keyDTS, p.DTS)
			}
			if p.PTS != p.DTS {
				ctsNonZero++
			}
			if p.PTS < lastPTS {
				reordered++
			}
			lastPTS = p.PTS
		case "audio":
			audio++
			if !p.Keyframe {
				t.Errorf("audio packet not marked key: %+v", p)
			}
		}
	}
	if video != fixtureVideoPackets || audio != fixtureAudioPackets {
		t.Errorf("packets: video %d audio %d, want %d and %d",
			video, audio, fixtureVideoPackets, fixtureAudioPackets)
	}
	if want := []int64{0, 2000, 4000, 6000, 8000}; !slices.Equal(keyDTS, want) {
		t.Errorf("video keyframe DTS = %v, want %v (GOP 2 s)", keyDTS, want)
	}
	// B-frames: PTS runs out of order, and the FLV composition time offset
	// (PTS - DTS) is non-zero.
	if reordered == 0 || ctsNonZero == 0 {
		t.Errorf("no B-frames: %d reordered PTS, %d packets with PTS != DTS", reordered, ctsNonZero)
	}
	t.Logf("fixture: %d video (%d keyframes, %d reordered), %d audio packets",
		video, len(keyDTS), reordered, audio)
}

func TestFixtureDecode(t *testing.T) {
	t.Parallel()
	video, audio := DecodeFrames(t, FixturePath(t))
	if video != fixtureVideoPackets || audio != fixtureAudioPackets {
		t.Errorf("decoded video %d audio %d frames, want %d and %d",
			video, audio, fixtureVideoPackets, fixtureAudioPackets)
	}
}

// TestFFmpegDecodeDetectsCorruption checks that Decode fails, rather than
// conceals, damaged video and a truncated file.
func TestFFmpegDecodeDetectsCorruption(t *testing.T) {
	t.Parallel()
	ffmpeg := RequireTool(t, "ffmpeg")
	data, err := os.ReadFile(FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:500000] }},
		{"garbled", func(b []byte) []byte {
			// 100000 falls in a P-frame slice of the first GOP.
			for i := 100000; i < 100064; i++ {
				b[i] ^= 0x5a
			}
			return b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := filepath.Join(t.TempDir(), "bad.flv")
			if err := os.WriteFile(bad, tc.edit(slices.Clone(data)), 0o644); err != nil {
				t.Fatal(err)
			}
			v, a, err := Decode(t.Context(), ffmpeg, bad)
			if err == nil {
				t.Fatalf("Decode of %s fixture = %d video, %d audio, nil error; want an error", tc.name, v, a)
			}
		})
	}
}

// TestFFmpegPublishRecordRTMP publishes the fixture over real RTMP to an
// `ffmpeg -listen 1` recorder and checks the recording carries the same
// payloads, packet for packet.
func TestFFmpegPublishRecordRTMP(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	out := filepath.Join(t.TempDir(), "rec.flv")
	url := "rtmp://" + addr + "/live/test"
	rec := StartRecorder(t, url, out, RecordOptions{InputArgs: []string{"-listen", "1"}})
	waitListening(t, addr, rec)
	pub := StartPublisher(t, url, PublishOptions{ReadRate: 8})
	if err := pub.Wait(t.Context()); err != nil {
		t.Fatalf("publisher: %v\n%s", err, pub.Stderr())
	}
	if err := rec.Wait(t.Context()); err != nil {
		t.Fatalf("recorder: %v\n%s", err, rec.Stderr())
	}
	comparePayloads(t, ProbePackets(t, FixturePath(t)), ProbePackets(t, out))
	if v, a := DecodeFrames(t, out); v != fixtureVideoPackets || a != fixtureAudioPackets {
		t.Errorf("decoded recording: video %d audio %d, want %d and %d",
			v, a, fixtureVideoPackets, fixtureAudioPackets)
	}
}

// TestFFmpegStopFinishesOutput checks that Stop (SIGINT) ends a looping
// publisher and leaves a complete, decodable file behind.
func TestFFmpegStopFinishesOutput(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "loop.flv")
	pub := StartPublisher(t, out, PublishOptions{Loop: true, ReadRate: 4})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(out); err == nil && fi.Size() > 200_000 {
			break
		}
		select {
		case <-pub.Done():
			t.Fatalf("looping publisher exited early: %s", pub.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("publisher wrote too little in 30 s: %s", pub.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pub.Stop()
	select {
	case <-pub.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	v, a := DecodeFrames(t, out)
	if v == 0 || a == 0 {
		t.Errorf("decoded %d video, %d audio frames from stopped output", v, a)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr %s: %v", addr, err)
	}
	ln.Close()
}

// comparePayloads fails unless got has the same packets per stream type as
// want, compared by payload hash, in the same order.
func comparePayloads(t *testing.T, want, got []ProbePacket) {
	t.Helper()
	for _, kind := range []string{"video", "audio"} {
		w, g := hashesOf(want, kind), hashesOf(got, kind)
		if len(w) != len(g) {
			t.Errorf("%s: %d packets, want %d", kind, len(g), len(w))
			continue
		}
		if i := slices.Compare(w, g); i != 0 {
			for j := range w {
				if w[j] != g[j] {
					t.Errorf("%s packet %d: payload %s, want %s", kind, j, g[j], w[j])
					break
				}
			}
		}
	}
}

func hashesOf(pkts []ProbePacket, kind string) []string {
	var hs []string
	for _, p := range pkts {
		if p.CodecType == kind {
			hs = append(hs, p.DataHash)
		}
	}
	return hs
}

// waitListening waits until some process listens on addr, by reading
// /proc/net/tcp: a trial connection would be taken as the one RTMP client
// that `ffmpeg -listen 1` accepts.
func waitListening(t *testing.T, addr string, p *Proc) {
	t.Helper()
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0100007F:%04X", port) // 127.0.0.1, little-endian address
	deadline := time.Now().Add(10 * time.Second)
	for {
		if procNetListening(t, want) {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("listener exited: %s", p.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 10 s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func procNetListening(t *testing.T, local string) bool {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatalf("waitListening needs Linux /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...; st 0A is TCP_LISTEN.
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[1] == local && fields[3] == "0A" {
			return true
		}
	}
	return false
}
