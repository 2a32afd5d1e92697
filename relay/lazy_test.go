package relay

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLazyNoLostKick kicks a Lazy from many goroutines while its Run takes work from
// a counter and parks whenever it finds none: every piece of work is taken, and at
// most one Run is active at a time.
func TestLazyNoLostKick(t *testing.T) {
	var (
		l              Lazy
		pending, taken atomic.Int64
		active         atomic.Int32
		overlap        atomic.Bool
	)
	l.Run = func() {
		if active.Add(1) > 1 {
			overlap.Store(true)
		}
		defer active.Add(-1)
		for {
			l.Round()
			if n := pending.Swap(0); n > 0 {
				taken.Add(n)
				continue
			}
			// Leave the active count before Park: a Run started by a Kick that
			// follows the Park may begin at once.
			active.Add(-1)
			stop := l.Park(func() bool { return pending.Load() == 0 })
			active.Add(1)
			if stop {
				return
			}
		}
	}
	const kickers, kicks = 8, 2000
	var wg sync.WaitGroup
	for range kickers {
		wg.Go(func() {
			for range kicks {
				pending.Add(1)
				l.Kick()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for taken.Load() != kickers*kicks && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := taken.Load(); got != kickers*kicks {
		t.Fatalf("took %d of %d pieces of work", got, kickers*kicks)
	}
	if overlap.Load() {
		t.Fatal("two Runs were active at once")
	}
}

// TestLazyHold: Kicks while held only mark work; the held Run sees it.
func TestLazyHold(t *testing.T) {
	var l Lazy
	started := make(chan struct{}, 2)
	l.Run = func() { started <- struct{}{} }
	l.Hold()
	l.Kick()
	select {
	case <-started:
		t.Fatal("Kick started Run while held")
	case <-time.After(20 * time.Millisecond):
	}
	// The held Run finds the Kick's mark: it must go on rather than stop.
	if l.Park(func() bool { return true }) {
		t.Fatal("Park stopped although a Kick came while held")
	}
}
