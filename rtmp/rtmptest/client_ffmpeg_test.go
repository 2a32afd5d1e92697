package rtmptest

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// freeAddr returns a loopback address nobody listens on right now, for
// ffmpeg's -listen mode, which cannot be handed a listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// dialRetry dials addr until ffmpeg listens there or ctx ends.
func dialRetry(ctx context.Context, t *testing.T, addr string) *Client {
	t.Helper()
	for {
		c, err := Dial(ctx, addr)
		if err == nil {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ffmpeg never listened on %s: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestPublishToFFmpeg publishes the fixture to a real peer, ffmpeg in RTMP
// server mode (-listen 1), which remuxes it to FLV; every audio and video
// tag must come out as sent. With an offset of 16777.1 s the timestamps
// cross 0xFFFFFF ms, so ffmpeg must find our extended timestamps on type 3
// chunks where it expects them.
func TestPublishToFFmpeg(t *testing.T) {
	ffmpeg := RequireTool(t, "ffmpeg")
	tags, err := ReadFLV(FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, offsetMs := range []uint32{0, 16777100} {
		t.Run("offset="+strconv.Itoa(int(offsetMs)), func(t *testing.T) {
			addr := freeAddr(t)
			out := filepath.Join(t.TempDir(), "out.flv")
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-listen", "1",
				"-i", "rtmp://"+addr+"/live/cam", "-c", "copy", "-f", "flv", out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

			c := dialRetry(ctx, t, addr)
			defer c.Close()
			if err := c.Connect("live", "rtmp://"+addr+"/live"); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish("cam"); err != nil {
				t.Fatal(err)
			}
			setDataFrame, _ := EncodeAMF0("@setDataFrame")
			for _, tag := range tags {
				p := tag.Payload
				if tag.TypeID == TypeData {
					p = append(setDataFrame[:len(setDataFrame):len(setDataFrame)], p...)
				}
				if err := c.WriteMedia(tag.TypeID, tag.Timestamp+offsetMs, p); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.CloseStream(); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr.Bytes())
			}

			got, err := ReadFLV(out)
			if err != nil {
				t.Fatal(err)
			}
			media := func(tags []FLVTag) []FLVTag {
				var m []FLVTag
				for _, tag := range tags {
					if tag.TypeID == TypeAudio || tag.TypeID == TypeVideo {
						m = append(m, tag)
					}
				}
				return m
			}
			want := media(tags)
			gotMedia := media(got)
			// ffmpeg may drop the trailing AVC end of sequence; everything else must match.
			if len(gotMedia) < len(want)-1 || len(gotMedia) > len(want) {
				t.Fatalf("ffmpeg wrote %d audio/video tags, sent %d\n%s", len(gotMedia), len(want), stderr.Bytes())
			}
			// ffmpeg writes sequence headers at 0 and rebases the rest on the
			// first dts, so compare timestamps up to a constant shift.
			var shift uint32
			for i, g := range gotMedia {
				w := want[i]
				if i == 2 {
					shift = g.Timestamp - w.Timestamp
				}
				seqHeader := len(w.Payload) > 1 && w.Payload[1] == 0
				if g.TypeID != w.TypeID || (!seqHeader && g.Timestamp != w.Timestamp+shift) || !bytes.Equal(g.Payload, w.Payload) {
					t.Fatalf("tag %d: got type %d ts %d %d bytes, sent type %d ts %d %d bytes (shift %d)", i,
						g.TypeID, g.Timestamp, len(g.Payload), w.TypeID, w.Timestamp, len(w.Payload), shift)
				}
			}
			t.Logf("ffmpeg received %d of %d tags intact", len(gotMedia), len(want))
		})
	}
}

// TestPlayFromFFmpeg plays the fixture from a real peer, ffmpeg in RTMP
// server mode (-listen 1), whose chunk writer uses type 1, 2 and 3 headers.
// With an offset of 16777.1 s the timestamps cross 0xFFFFFF ms mid-stream,
// so extended timestamps appear on type 3 chunks, the go-rtmp bug.
func TestPlayFromFFmpeg(t *testing.T) {
	ffmpeg := RequireTool(t, "ffmpeg")
	tags, err := ReadFLV(FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	var want []FLVTag
	for _, tag := range tags {
		if tag.TypeID == TypeAudio || tag.TypeID == TypeVideo {
			want = append(want, tag)
		}
	}
	for _, offsetMs := range []uint32{0, 16777100} {
		t.Run("offset="+strconv.Itoa(int(offsetMs)), func(t *testing.T) {
			addr := freeAddr(t)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-i", fixture,
				"-c", "copy", "-output_ts_offset", strconv.FormatFloat(float64(offsetMs)/1000, 'f', 3, 64),
				"-f", "flv", "-listen", "1", "rtmp://"+addr+"/live/cam")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

			c := dialRetry(ctx, t, addr)
			defer c.Close()
			if err := c.Connect("live", "rtmp://"+addr+"/live"); err != nil {
				t.Fatal(err)
			}
			if err := c.Play("cam"); err != nil {
				t.Fatal(err)
			}
			var got []FLVTag
			for {
				m, err := c.ReadMedia(ctx)
				if err != nil {
					t.Logf("ReadMedia ended: %v", err)
					break
				}
				if m.TypeID == TypeAudio || m.TypeID == TypeVideo {
					got = append(got, FLVTag{m.TypeID, m.Timestamp, m.Payload})
				}
			}
			if len(got) < len(want)-1 {
				t.Fatalf("got %d audio/video messages, want %d\n%s", len(got), len(want), stderr.Bytes())
			}
			// ffmpeg writes the sequence headers at 0 and shifts the rest by
			// a constant close to the offset (it rebases on the first dts).
			var shift uint32
			for i, g := range got {
				w := want[i]
				seqHeader := len(w.Payload) > 1 && w.Payload[1] == 0
				if i == 2 {
					shift = g.Timestamp - w.Timestamp
				}
				wantTS := w.Timestamp + shift
				if seqHeader {
					wantTS = 0
				}
				if g.TypeID != w.TypeID || g.Timestamp != wantTS || !bytes.Equal(g.Payload, w.Payload) {
					t.Fatalf("message %d: got type %d ts %d %d bytes, want type %d ts %d %d bytes", i,
						g.TypeID, g.Timestamp, len(g.Payload), w.TypeID, wantTS, len(w.Payload))
				}
			}
			if last := got[len(got)-1].Timestamp; offsetMs > 0 && (shift < offsetMs-1000 || last <= 0xFFFFFF) {
				t.Fatalf("timestamps shifted by %d up to %d: the stream did not cross 0xFFFFFF", shift, last)
			}
		})
	}
}
