package netio

import "sync"

// LazyPoller is a Poller started on first use and stopped for good by Close: what a
// server that parks connections holds. The zero value is ready.
type LazyPoller struct {
	mu     sync.Mutex
	p      *Poller // guarded by mu
	err    error   // guarded by mu: why NewPoller failed; not tried again
	closed bool    // guarded by mu
}

// Get returns the poller, starting it on first use. It returns nil, and the error, when
// there can be none (not Linux, or NewPoller failed), and nil once Close was called.
func (l *LazyPoller) Get() (*Poller, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p == nil && l.err == nil && !l.closed {
		l.p, l.err = NewPoller()
	}
	if l.closed {
		return nil, nil
	}
	return l.p, l.err
}

// Parked returns the number of connections parked now.
func (l *LazyPoller) Parked() int {
	l.mu.Lock()
	p := l.p
	l.mu.Unlock()
	if p == nil {
		return 0
	}
	return p.Parked()
}

// Close stops the poller; Get returns nil from now on. Connections still parked stay
// parked: their owners close them (Conn.Shut).
func (l *LazyPoller) Close() {
	l.mu.Lock()
	p := l.p
	l.p, l.closed = nil, true
	l.mu.Unlock()
	if p != nil {
		p.Close()
	}
}
