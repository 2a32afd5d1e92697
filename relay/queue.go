package relay

// queue is a subscriber's FIFO of frames: a ring buffer that grows by doubling up to
// its packet limit and is then reused, so steady-state pushes and pops allocate
// nothing. It enforces no limits itself: the Subscriber checks them before a push.
// Frames are removed only from the front, except on overflow (dropVideo,
// dropOldestMedia). Every field is guarded by the owning Subscriber's mu.
type queue struct {
	buf    []Frame
	head   int // index in buf of the oldest frame
	n      int // queued frames
	bytes  int // payload bytes of the queued frames
	nVideo int // queued video frames (not sequence headers): what dropVideo removes
	max    int // the packet limit: growth stops doubling there (immutable)
}

// initialQueue is the first ring size: small, because most subscribers keep up.
const initialQueue = 16

// keepQueue is the largest ring a drained queue keeps; a bigger one (grown by a join's
// cached GOP or a burst) is freed when the queue drains, and the next push starts
// again at initialQueue. Rings up to keepQueue are reused, so a subscriber that keeps
// up allocates nothing.
const keepQueue = 64

// at returns the i-th oldest frame; 0 <= i < len(q.buf).
func (q *queue) at(i int) *Frame {
	j := q.head + i
	if j >= len(q.buf) {
		j -= len(q.buf)
	}
	return &q.buf[j]
}

// push appends f, growing the ring if it is full.
func (q *queue) push(f Frame) {
	if q.n == len(q.buf) {
		q.grow()
	}
	*q.at(q.n) = f
	q.n++
	q.account(f.Packet, 1)
}

// account adds (sign 1) or removes (sign -1) p from the byte and video counters.
func (q *queue) account(p *Packet, sign int) {
	q.bytes += sign * len(p.Payload)
	if p.isVideoFrame() {
		q.nVideo += sign
	}
}

// grow doubles the ring, stopping once at max. Only the few essential frames of a
// join can push it past max.
func (q *queue) grow() {
	size := 2 * len(q.buf)
	switch {
	case size == 0:
		size = min(initialQueue, max(q.max, 1))
	case len(q.buf) < q.max && size > q.max:
		size = q.max
	}
	nb := make([]Frame, size)
	for i := 0; i < q.n; i++ {
		nb[i] = *q.at(i)
	}
	q.buf, q.head = nb, 0
}

// pop removes and returns the oldest frame; q.n must be > 0. The slot is cleared so
// that the ring does not keep the packet alive.
func (q *queue) pop() Frame {
	p := q.at(0)
	f := *p
	*p = Frame{}
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.n--
	q.account(f.Packet, -1)
	if q.n == 0 && len(q.buf) > keepQueue {
		q.buf, q.head = nil, 0
	}
	return f
}

// dropVideo removes every queued video frame, keeping the order of the rest
// (audio, metadata, sequence headers, events). It returns how many it removed.
func (q *queue) dropVideo() int {
	if q.nVideo == 0 {
		return 0
	}
	w := 0
	for r := 0; r < q.n; r++ {
		f := *q.at(r)
		if f.Packet.isVideoFrame() {
			q.account(f.Packet, -1)
			continue
		}
		*q.at(w) = f
		w++
	}
	dropped := q.n - w
	for i := w; i < q.n; i++ {
		*q.at(i) = Frame{}
	}
	q.n = w
	return dropped
}

// dropOldestMedia removes the oldest audio or video frame, keeping everything
// else in order. It reports false if the queue holds no media.
func (q *queue) dropOldestMedia() bool {
	i := q.firstMedia()
	if i < 0 {
		return false
	}
	q.account(q.at(i).Packet, -1)
	// Shift the essential frames in front of it one slot towards the back.
	for j := i; j > 0; j-- {
		*q.at(j) = *q.at(j - 1)
	}
	*q.at(0) = Frame{}
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.n--
	return true
}

// firstMedia returns the index of the oldest audio or video frame, or -1. Essential
// frames are few, so this stops after a couple of steps.
func (q *queue) firstMedia() int {
	for i := 0; i < q.n; i++ {
		if q.at(i).Packet.isMedia() {
			return i
		}
	}
	return -1
}

// mediaSpan returns the time from the oldest queued media frame to the newest
// frame, in ms (0 if no media is queued).
func (q *queue) mediaSpan() int64 {
	i := q.firstMedia()
	if i < 0 {
		return 0
	}
	return q.at(q.n-1).Timestamp - q.at(i).Timestamp
}

// release drops the ring and every packet reference in it.
func (q *queue) release() {
	*q = queue{max: q.max}
}
