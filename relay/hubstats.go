package relay

import "sync/atomic"

// HubStats are the hub's cumulative counters since New, for monitoring (Prometheus
// counters in cmd/mtrelay). Unlike StreamStats they never go down: what a stream
// counted is kept when the stream entry goes away.
type HubStats struct {
	BytesIn  int64 // payload bytes written by publishers
	BytesOut int64 // payload bytes delivered to subscribers by Read
	Dropped  int64 // packets dropped on queue overflow, all subscribers
	// Subscribers the hub cut off, by reason.
	EvictedSlow        int64 // ErrSlowSubscriber: behind for longer than Config.SlowGrace
	EvictedNoPublisher int64 // ErrNoPublisher: no publisher for longer than Config.PlayWait
}

// hubTotals holds the counters behind HubStats. Publish paths only touch it on
// overflow and eviction, never per packet: byte counts stay per stream and are
// folded in here when a stream entry is removed.
type hubTotals struct {
	goneIn, goneOut int64 // guarded by Hub.mu; bytes of stream entries already removed

	dropped            atomic.Int64
	evictedSlow        atomic.Int64
	evictedNoPublisher atomic.Int64
}

// foldLocked adds the byte counters of st, which is leaving the hub, to the totals.
// Hub.mu and st.mu must be held.
func (t *hubTotals) foldLocked(st *stream) {
	t.goneIn += st.bytesIn.Load()
	t.goneOut += st.bytesOutLocked()
}

// countEnd counts a subscriber ended with err (called from Subscriber.setErrLocked).
func (t *hubTotals) countEnd(err error) {
	switch err {
	case ErrSlowSubscriber:
		t.evictedSlow.Add(1)
	case ErrNoPublisher:
		t.evictedNoPublisher.Add(1)
	}
}

// Stats returns the hub's cumulative counters. It takes each live stream's read lock
// briefly, like Streams, and is meant for a scrape every few seconds.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	hs := HubStats{BytesIn: h.tot.goneIn, BytesOut: h.tot.goneOut}
	list := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		list = append(list, st)
	}
	h.mu.Unlock()
	// A stream removed after the unlock is folded into goneIn/goneOut, which this
	// snapshot does not include, so it is counted exactly once here.
	for _, st := range list {
		hs.BytesIn += st.bytesIn.Load()
		st.mu.RLock()
		hs.BytesOut += st.bytesOutLocked()
		st.mu.RUnlock()
	}
	hs.Dropped = h.tot.dropped.Load()
	hs.EvictedSlow = h.tot.evictedSlow.Load()
	hs.EvictedNoPublisher = h.tot.evictedNoPublisher.Load()
	return hs
}
