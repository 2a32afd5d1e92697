package main

import (
	"context"
	"testing"
	"time"
)

// TestWriteCoalesce checks that holding audio for the next video frame
// (--write-coalesce) keeps every message, its bytes, its order and its timestamp.
func TestWriteCoalesce(t *testing.T) {
	t.Parallel()
	r := startRelay(t, func(c *Config) { c.WriteCoalesce = 30 * time.Millisecond })
	const key = "live/coalesce"
	tags := fixtureTags(t)
	pl := r.player(t, "rtmp", key)
	pub := r.publisher(t, "rtmp", key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	read := goRead(t, ctx, pl, nil)
	if err := publishAll(ctx, pub, tags, 0, newPacer(2, 0)); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	res := <-read
	wantUnpublished(t, "player", res)
	compareToTags(t, "player", res.msgs, tags, 0)
	checkMonotonic(t, "player", res.msgs)
}
