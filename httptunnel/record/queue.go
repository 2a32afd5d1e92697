package record

import (
	"sync"

	"github.com/mtrelay/mtrelay/relay"
)

// queue is a recording's own bounded queue between its drain goroutine (the
// producer, which empties the hub subscriber at once) and its writer goroutine (the
// consumer, which may be held up by the disk). It is bounded in payload bytes.
type queue struct {
	max    int           // immutable; bytes
	notify chan struct{} // capacity 1, never closed; signalled when frames arrive or the queue ends

	mu     sync.Mutex
	frames []relay.Frame // guarded by mu
	bytes  int           // guarded by mu; payload bytes in frames
	ended  bool          // guarded by mu; the producer is done: no more frames
	cause  error         // guarded by mu; why it ended; nil for a clean stop
}

func newQueue(maxBytes int) *queue {
	return &queue{max: maxBytes, notify: make(chan struct{}, 1)}
}

// push adds f. It returns false, adding nothing, when f does not fit: the disk is
// not keeping up. An empty queue takes any frame, so one oversized frame cannot
// wedge it.
func (q *queue) push(f relay.Frame) bool {
	n := len(f.Packet.Payload)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return false
	}
	if len(q.frames) > 0 && q.bytes+n > q.max {
		return false
	}
	q.frames = append(q.frames, f)
	q.bytes += n
	if len(q.frames) == 1 {
		q.signal()
	}
	return true
}

// end marks the end of the frames: cause nil for a clean stop (unpublish, shutdown),
// otherwise why the recording stops. The first call wins.
func (q *queue) end(cause error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.ended {
		q.ended, q.cause = true, cause
		q.signal()
	}
}

func (q *queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// take moves every queued frame to dst (swapping buffers, no copy of the frames'
// payloads) and reports whether the producer has ended, and why.
func (q *queue) take(dst []relay.Frame) (frames []relay.Frame, ended bool, cause error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	frames, q.frames = q.frames, dst[:0]
	q.bytes = 0
	return frames, q.ended, q.cause
}
