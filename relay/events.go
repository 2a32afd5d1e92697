package relay

import (
	"sync"
	"sync/atomic"
)

// PublishFunc is told about a publish that has just started: the stream key and the
// publisher's PublisherInfo (Mode says whether the client asked for a recording).
//
// It runs on the publisher's goroutine, inside Hub.Publish, after the publisher is
// installed and before Publish returns, with no hub lock held. So it may call back
// into the hub (Subscribe, Stream), and a subscriber it attaches sees every packet
// of this publish from the first one: the publisher cannot write before Publish has
// returned. It must not block: it holds up the publisher's connection. Anything slow
// (files, databases) belongs in a goroutine owned by the listener.
type PublishFunc func(key string, info PublisherInfo)

// publishListener is one registration of OnPublish; the pointer is its identity.
type publishListener struct{ fn PublishFunc }

// events holds the hub's publish listeners. It starts no goroutine: listeners run
// on the publisher's goroutine.
type events struct {
	mu        sync.Mutex                         // serialises OnPublish and removals
	listeners atomic.Pointer[[]*publishListener] // copy-on-write under mu; read without a lock by Publish
}

// OnPublish registers fn to be called after every successful Publish from now on
// (see PublishFunc). Listeners are called in the order they were registered. The
// returned function removes the registration; it is idempotent, and after it
// returns fn is not called by a Publish that starts later (one already running may
// still call it). Safe for concurrent use; a nil fn registers nothing.
func (h *Hub) OnPublish(fn PublishFunc) (remove func()) {
	if fn == nil {
		return func() {}
	}
	l := &publishListener{fn: fn}
	ev := &h.events
	ev.mu.Lock()
	var list []*publishListener
	if old := ev.listeners.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, l)
	ev.listeners.Store(&list)
	ev.mu.Unlock()
	return func() {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		old := ev.listeners.Load()
		if old == nil {
			return
		}
		list := make([]*publishListener, 0, len(*old))
		for _, x := range *old {
			if x != l {
				list = append(list, x)
			}
		}
		ev.listeners.Store(&list)
	}
}

// published calls the publish listeners. No hub lock may be held.
func (ev *events) published(key string, info PublisherInfo) {
	list := ev.listeners.Load()
	if list == nil {
		return
	}
	for _, l := range *list {
		l.fn(key, info)
	}
}
