package relay

// Queued returns how many frames wait in s's queue, so that tests can drain a
// subscriber without blocking.
func (s *Subscriber) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.n
}
