package main

import (
	"testing"
	"time"
)

// TestWriteCoalesce checks that holding audio for the next video frame
// (--write-coalesce) keeps every message, its bytes, its order and its timestamp.
func TestWriteCoalesce(t *testing.T) {
	t.Parallel()
	r := startRelay(t, func(c *Config) { c.WriteCoalesce = 30 * time.Millisecond })
	checkPassThrough(t, r, "rtmp", "live/coalesce", 2)
}
