package httptunnel

import (
	"sync"
	"time"
)

// deadline is a read or write deadline of a tunnel conn: a channel closed when the
// deadline passes. It is the pipeDeadline of net/pipe.go (same semantics as a TCP
// conn's deadlines: a deadline in the past fires at once, the zero time clears it,
// and setting a new one re-arms it).
type deadline struct {
	mu     sync.Mutex    // guards timer and cancel
	timer  *time.Timer   // guarded by mu; fires close(cancel)
	cancel chan struct{} // guarded by mu; closed when the deadline passed; never nil
}

func makeDeadline() deadline {
	return deadline{cancel: make(chan struct{})}
}

// set arms the deadline at t; the zero t clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for its callback to close cancel
	}
	d.timer = nil
	closed := isClosedChan(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
