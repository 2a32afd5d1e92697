package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// TestMaxConns checks that --max-conns refuses the connection over the limit with a
// log line naming its address, and that connections under it keep working.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	r, logs := startRelayLogs(t, func(c *Config) { c.MaxConns = 2 })
	a := r.connect(t, "rtmp", "live")
	b := r.connect(t, "rtmp", "live")
	over := rawDialNoHandshake(t, r.rtmpAddr)
	if _, err := expectClosed(t, "third connection", over, 5*time.Second); err == nil {
		t.Fatal("third connection read no error")
	}
	waitFor(t, 5*time.Second, "refusal log line", func() bool {
		return len(logs.find(func(l map[string]any) bool {
			msg, _ := l["message"].(string)
			remote, _ := l["remote"].(string)
			return strings.Contains(msg, "too many connections") && remote == over.LocalAddr().String()
		})) == 1
	})
	// The first two still work: one publishes, the other plays.
	if err := a.Publish("cap"); err != nil {
		t.Fatalf("publish under the limit: %v", err)
	}
	if err := b.Play("cap"); err != nil {
		t.Fatalf("play under the limit: %v", err)
	}
}

// TestIdlePublisherTimeout checks that a publisher that goes silent is closed after
// --idle-timeout with a log line, and its stream stops being live.
func TestIdlePublisherTimeout(t *testing.T) {
	t.Parallel()
	r, logs := startRelayLogs(t, func(c *Config) { c.IdleTimeout = time.Second })
	pub := r.publisher(t, "rtmp", "live/idle")
	tags := fixtureTags(t)
	for _, tag := range tags[:20] {
		if err := pub.WriteMedia(tag.TypeID, tag.Timestamp, tag.Payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "stream live", func() bool {
		s, ok := r.stream(t, "live/idle")
		return ok && s.Live
	})
	// Silence: the relay must close the publisher and end the stream.
	waitFor(t, 10*time.Second, "idle publisher closed", func() bool {
		s, ok := r.stream(t, "live/idle")
		return !ok || !s.Live
	})
	// The stream ends as the connection closes; its close line follows right after.
	waitFor(t, 5*time.Second, "close log line with the idle reason", func() bool {
		return len(logs.find(func(l map[string]any) bool {
			reason, _ := l["reason"].(string)
			return l["message"] == "close" && strings.Contains(reason, "idle for 1s")
		})) > 0
	})
}

// TestOBSCommandFlow follows OBS's order: Set Chunk Size 4096 before connect, then
// releaseStream, FCPublish and createStream together, publish, @setDataFrame
// onMetaData, media; a player receives it.
func TestOBSCommandFlow(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	pub, err := rtmptest.Dial(ctx, r.rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.SetChunkSize(4096); err != nil {
		t.Fatal(err)
	}
	if err := pub.Connect("live", "rtmp://"+r.rtmpAddr+"/live"); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("obs?key=secret"); err != nil {
		t.Fatal(err)
	}
	player := r.player(t, "rtmp", "live/obs")
	meta, err := rtmptest.EncodeAMF0("@setDataFrame", "onMetaData", rtmptest.ECMAArray{
		"width": 640.0, "height": 360.0, "framerate": 25.0, "videocodecid": 7.0, "audiocodecid": 10.0,
		"audiosamplerate": 44100.0, "stereo": true, "encoder": "obs-output module (libobs version 31.0.0)",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.WriteMedia(rtmptest.TypeData, 0, meta); err != nil {
		t.Fatal(err)
	}
	tags := fixtureTags(t)
	for _, tag := range tags[:60] {
		if tag.TypeID == rtmptest.TypeData {
			continue
		}
		if err := pub.WriteMedia(tag.TypeID, tag.Timestamp, tag.Payload); err != nil {
			t.Fatal(err)
		}
	}
	m, err := player.ReadMedia(ctx)
	if err == nil && isSampleAccess(m.Payload) {
		m, err = player.ReadMedia(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	vals, err := rtmptest.DecodeAMF0(m.Payload)
	if m.TypeID != rtmptest.TypeData || err != nil || len(vals) < 2 || vals[0] != "onMetaData" {
		t.Fatalf("first message: type %d %v %v, want onMetaData without @setDataFrame", m.TypeID, vals, err)
	}
	s, _ := r.stream(t, "live/obs")
	if s.Media.Width != 640 || s.Media.Height != 360 || s.Media.FPS != 25 || s.Media.VideoCodec != "H264" || s.Media.AudioCodec != "AAC" {
		t.Errorf("stream stats media = %+v", s.Media)
	}
	if s.Publisher == nil || s.Publisher.Protocol != "rtmp" {
		t.Errorf("stream stats publisher = %+v", s.Publisher)
	}
}

// rawDialNoHandshake dials addr; the conn is closed when the test ends.
func rawDialNoHandshake(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
