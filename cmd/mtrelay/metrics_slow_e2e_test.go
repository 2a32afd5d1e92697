//go:build linux

package main

import (
	"context"
	"testing"
	"time"
)

// TestMetricsSlowSubscriber makes a player that stops reading (see
// testSlowSubscriber) and checks that /metrics counts it as evicted for being slow,
// its dropped packets, and its connection as closed for that reason.
func TestMetricsSlowSubscriber(t *testing.T) {
	t.Parallel()
	const key = "live/slowmetrics"
	r := startRelay(t, func(c *Config) {
		c.QueueDuration = 3 * time.Second
		c.SlowGrace = 2 * time.Second
		c.WriteTimeout = 10 * time.Second // above queue+grace, so the hub is what evicts
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	pub := r.publisher(t, "rtmp", key)
	p := newPacer(2, 0)
	stopPub := livePublisher(t, ctx, pub, loopTags(fixtureTags(t), 4), p)
	if err := p.wait(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	slow := startSlowPlayer(t, ctx, r, key)
	defer slow.Close()
	r.waitMetrics(t, "the slow player to play", func(m map[string]float64) bool {
		return m[`mtrelay_subscribers{protocol="rtmp"}`] == 1
	})
	var m map[string]float64
	waitFor(t, 25*time.Second, "the slow player to be evicted", func() bool {
		m = r.metrics(t)
		return m[`mtrelay_subscribers_evicted_total{reason="slow"}`] == 1 &&
			m[`mtrelay_rtmp_disconnects_total{reason="slow"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="rtmp",reason="slow"}`] == 1
	})
	if m["mtrelay_dropped_packets_total"] == 0 {
		t.Error("no dropped packets counted before the eviction")
	}
	if m[`mtrelay_subscribers{protocol="rtmp"}`] != 0 || m[`mtrelay_subscribers_evicted_total{reason="no_publisher"}`] != 0 {
		t.Errorf("after the eviction: %v rtmp subscribers, %v evicted for no publisher; want 0 and 0",
			m[`mtrelay_subscribers{protocol="rtmp"}`], m[`mtrelay_subscribers_evicted_total{reason="no_publisher"}`])
	}
	stopPub()
}
