package main

// Frames are matched between the publisher and the players by content, not
// by timestamp: the relay rebases timestamps per player, but it forwards
// every payload byte for byte. A frame's key is FNV-1a 64 of its length, its
// first keyHead bytes and its last keyTail bytes. The tail of a video frame
// is entropy-coded slice data, so distinct frames of the fixture get
// distinct keys, and a player computes the key while streaming the payload
// through, without holding the whole frame.
const (
	keyHead = 16
	keyTail = 32
)

// keyAcc accumulates the head and tail of one payload that arrives in
// pieces. Its zero value is ready; reset it before each payload.
type keyAcc struct {
	n     int // payload bytes seen
	head  [keyHead]byte
	tail  [keyTail]byte
	tailN int // valid bytes at the end of tail
}

func (a *keyAcc) reset() { a.n, a.tailN = 0, 0 }

// write adds the next piece of the payload.
func (a *keyAcc) write(p []byte) {
	if a.n < keyHead {
		copy(a.head[a.n:], p)
	}
	a.n += len(p)
	if len(p) >= keyTail {
		copy(a.tail[:], p[len(p)-keyTail:])
		a.tailN = keyTail
		return
	}
	// Shift what is kept left and append p.
	keep := min(a.tailN, keyTail-len(p))
	copy(a.tail[keyTail-len(p)-keep:], a.tail[keyTail-keep:])
	copy(a.tail[keyTail-len(p):], p)
	a.tailN = keep + len(p)
}

// sum returns the key of the payload written so far.
func (a *keyAcc) sum() uint64 {
	h := uint64(fnvOffset)
	for _, b := range [4]byte{byte(a.n >> 24), byte(a.n >> 16), byte(a.n >> 8), byte(a.n)} {
		h = (h ^ uint64(b)) * fnvPrime
	}
	for _, b := range a.head[:min(a.n, keyHead)] {
		h = (h ^ uint64(b)) * fnvPrime
	}
	for _, b := range a.tail[keyTail-a.tailN:] {
		h = (h ^ uint64(b)) * fnvPrime
	}
	return h
}

// FNV-1a 64 parameters (the same as hash/fnv, inlined so a key costs no
// allocation).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// frameKey returns the key of a whole payload, equal to what keyAcc computes
// for the same bytes in any split.
func frameKey(p []byte) uint64 {
	var a keyAcc
	a.write(p)
	return a.sum()
}
