package relay

import "sync/atomic"

// Lazy keeps a worker goroutine only while there is work, the way a subscriber's
// writer with SubscribeOptions.OnWake runs: Kick (the OnWake) marks work and starts
// Run unless it is running; Run calls Round at the start of each round of work and
// Park when a round found nothing, and returns when Park says so. No Kick is lost: a
// Kick during a round makes Park go on with another round.
type Lazy struct {
	// Run is what Kick starts on a new goroutine; set it before the first Kick.
	Run func()

	running atomic.Bool // Run is active, held, or its owner ended for good
	dirty   atomic.Bool // Kick was called since the last Round
}

// Kick marks work and starts Run unless it is running. It never blocks and may be
// called with locks held.
func (l *Lazy) Kick() {
	l.dirty.Store(true)
	if l.running.CompareAndSwap(false, true) {
		go l.Run()
	}
}

// Hold counts Run as running without starting it: Kicks until the caller starts Run
// itself only mark work.
func (l *Lazy) Hold() { l.running.Store(true) }

// Round starts a round of work: Kicks from now on make the next Park go on.
func (l *Lazy) Round() { l.dirty.Store(false) }

// Park is called by Run after a round that found nothing to do, with idle reporting
// whether anything is left that no Kick announces. It reports true when Run must
// return: nothing is left, or a Kick already started another Run. A Run that ends
// for good instead of parking just returns without Park: running stays set and no
// Kick starts Run again.
func (l *Lazy) Park(idle func() bool) bool {
	l.running.Store(false)
	if !l.dirty.Load() && idle() {
		return true
	}
	return !l.running.CompareAndSwap(false, true)
}
