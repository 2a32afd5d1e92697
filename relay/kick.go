package relay

import "fmt"

// Kick disconnects the publisher of key when may approves it: may sees the
// publisher's PublisherInfo (its Owner) and runs with the hub lock held, so it must
// be quick and must not call back into the hub. The publisher is unpublished at once
// (the stream leaves Streams when nobody plays it) and then its PublisherInfo.Kick
// callback, if any, closes its connection. ErrNoPublisher when key has no publisher,
// ErrAccessDenied when may refuses.
func (h *Hub) Kick(key string, may func(PublisherInfo) bool) error {
	h.mu.Lock()
	st := h.streams[key]
	var p *Publisher
	if st != nil {
		st.mu.RLock()
		p = st.pub
		st.mu.RUnlock()
	}
	if p == nil {
		h.mu.Unlock()
		return fmt.Errorf("relay kick %s: %w", key, ErrNoPublisher)
	}
	if may != nil && !may(p.info) {
		h.mu.Unlock()
		return fmt.Errorf("relay kick %s: %w", key, ErrAccessDenied)
	}
	h.mu.Unlock()
	p.st.log.Info().Str("protocol", p.info.Protocol).Str("remote", p.info.Remote).
		Str("user", p.info.Owner).Msg("publisher kicked")
	p.st.markKicked(p) // ends.go: its subscribers' ends count as kicked
	p.close(false)     // not the publishing goroutine: its owed writes stay its own
	if p.info.Kick != nil {
		p.info.Kick()
	}
	return nil
}

// PublisherOwner returns the Owner of key's current publisher (PublisherInfo.Owner,
// empty when publishing is open) and whether key has a publisher.
func (h *Hub) PublisherOwner(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[key]
	if st == nil {
		return "", false
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.pub == nil {
		return "", false
	}
	return st.pub.info.Owner, true
}
