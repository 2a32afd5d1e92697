//go:build linux

package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReplyBacklogBounded checks that a client flooding commands without reading the
// replies is closed once its queued replies pass the cap, with a log line saying why,
// instead of growing the relay's memory.
func TestReplyBacklogBounded(t *testing.T) {
	t.Parallel()
	r, logs := startRelayLogs(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := dialSlow(ctx, r.rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := rawHandshake(conn); err != nil {
		t.Fatal(err)
	}
	b := appendCommand(t, nil, 0, "connect", 1.0, map[string]any{"app": "live", "tcUrl": "rtmp://" + r.rtmpAddr + "/live"})
	var flood []byte
	for i := range 2000 {
		flood = appendCommand(t, flood, 0, "noSuchCommand", float64(i+2), nil, strings.Repeat("x", 64))
	}
	_ = conn.SetWriteDeadline(time.Now().Add(25 * time.Second))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	// Each command makes the relay queue an _error reply of ~200 bytes; 40 rounds of
	// 2000 are ~16 MB of replies, far past the socket buffers and the 1 MiB cap.
	for range 40 {
		if _, err := conn.Write(flood); err != nil {
			break // closed by the relay: what we want
		}
	}
	waitFor(t, 20*time.Second, "backlog close log line", func() bool {
		return len(logs.find(func(l map[string]any) bool {
			reason, _ := l["reason"].(string)
			return l["message"] == "close" && strings.Contains(reason, "does not read its replies")
		})) == 1
	})
	// The relay still serves others.
	r.publisher(t, "rtmp", "live/after-flood")
}
