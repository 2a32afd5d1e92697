//go:build linux

package netio

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// parkedCall returns a function to park with and a channel that gets a value each
// time it runs.
func parkedCall() (func(), chan struct{}) {
	ch := make(chan struct{}, 4)
	return func() { ch <- struct{}{} }, ch
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func expectCall(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the parked function did not run", what)
	}
}

func expectNoCall(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: the parked function ran", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestPollerResumesOnInput parks connections with nothing to read, resumes each when
// its own peer writes or hangs up (and no other), and checks that the resumed owner
// reads the data through Read as before.
func TestPollerResumesOnInput(t *testing.T) {
	p := newPoller(t)
	a, b := tcpPair(t)
	c, d := tcpPair(t)
	ra, rc := New(a), New(c)
	fa, cha := parkedCall()
	fc, chc := parkedCall()
	if !ra.Park(p, fa) || !rc.Park(p, fc) {
		t.Fatal("Park refused an idle connection")
	}
	if n := p.Parked(); n != 2 {
		t.Fatalf("Parked() = %d, want 2", n)
	}
	expectNoCall(t, cha, "no input yet")

	b.Write([]byte("hello"))
	expectCall(t, cha, "input")
	expectNoCall(t, chc, "input on another connection")
	buf := make([]byte, 16)
	n, err := ra.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read after resume = %q, %v", buf[:n], err)
	}
	// Parked again, it is resumed again; a hang-up counts as input.
	if !ra.Park(p, fa) {
		t.Fatal("Park refused a second time")
	}
	b.Close()
	expectCall(t, cha, "hang-up")
	if _, err := ra.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after hang-up: %v, want EOF", err)
	}

	d.Write([]byte("x"))
	expectCall(t, chc, "input on the second connection")
	if n := p.Parked(); n != 0 {
		t.Fatalf("Parked() = %d after both resumed, want 0", n)
	}
}

// TestPollerInputBeforePark: input waiting in the socket or already buffered by Read
// makes Park refuse, so the owner reads it before it parks.
func TestPollerInputBeforePark(t *testing.T) {
	p := newPoller(t)
	a, b := tcpPair(t)
	ra := New(a)
	b.Write([]byte("early"))
	time.Sleep(20 * time.Millisecond)
	f, ch := parkedCall()
	if ra.Park(p, f) {
		t.Fatal("Park accepted a connection with input waiting in the socket")
	}
	expectNoCall(t, ch, "refused Park")

	buf := make([]byte, 2)
	if _, err := ra.Read(buf); err != nil {
		t.Fatal(err)
	}
	if ra.Park(p, f) {
		t.Fatal("Park accepted a connection with buffered input")
	}
}

// TestPollerShut: Shut takes a parked connection back and returns its function
// (which the poller then never runs), and a shut connection never parks again.
func TestPollerShut(t *testing.T) {
	p := newPoller(t)
	a, b := tcpPair(t)
	ra := New(a)
	f, ch := parkedCall()
	if ra.Shut() != nil {
		// not parked: nothing to resume
		t.Fatal("Shut of a connection that is not parked returned a function")
	}
	// A fresh connection: park, then shut.
	a2, b2 := tcpPair(t)
	r2 := New(a2)
	if !r2.Park(p, f) {
		t.Fatal("Park refused")
	}
	fn := r2.Shut()
	if fn == nil {
		t.Fatal("Shut of a parked connection returned nil")
	}
	a2.Close()
	b2.Write([]byte("late")) // the descriptor is gone: no event, no call
	expectNoCall(t, ch, "after Shut")
	if r2.Park(p, f) {
		t.Fatal("a shut connection parked")
	}
	if ra.Park(p, f) {
		t.Fatal("a shut connection parked")
	}
	if n := p.Parked(); n != 0 {
		t.Fatalf("Parked() = %d, want 0", n)
	}
	_ = b
}

// TestPollerClosed: a closed poller refuses to park.
func TestPollerClosed(t *testing.T) {
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	a, _ := tcpPair(t)
	f, _ := parkedCall()
	if New(a).Park(p, f) {
		t.Fatal("Park on a closed poller succeeded")
	}
}

// TestPollerManyConnections parks a few hundred connections and resumes each one
// by writing to it, in a random-ish order.
func TestPollerManyConnections(t *testing.T) {
	p := newPoller(t)
	const n = 200
	type pair struct {
		raw  *Conn
		peer net.Conn
		ch   chan struct{}
	}
	pairs := make([]pair, n)
	for i := range pairs {
		a, b := tcpPair(t)
		f, ch := parkedCall()
		pairs[i] = pair{New(a), b, ch}
		if !pairs[i].raw.Park(p, f) {
			t.Fatal("Park refused")
		}
	}
	for i := range n {
		j := (i * 37) % n
		pairs[j].peer.Write([]byte{byte(j)})
		expectCall(t, pairs[j].ch, "many")
	}
	if got := p.Parked(); got != 0 {
		t.Fatalf("Parked() = %d, want 0", got)
	}
}

// TestLazyPoller: the poller starts on first Get, is the same afterwards, and Close
// stops it for good.
func TestLazyPoller(t *testing.T) {
	var l LazyPoller
	if n := l.Parked(); n != 0 {
		t.Fatalf("Parked() before use = %d", n)
	}
	p1, err := l.Get()
	if err != nil || p1 == nil {
		t.Fatalf("Get: %v, %v", p1, err)
	}
	if p2, _ := l.Get(); p2 != p1 {
		t.Fatal("second Get returned another poller")
	}
	a, _ := tcpPair(t)
	f, _ := parkedCall()
	if !New(a).Park(p1, f) || l.Parked() != 1 {
		t.Fatalf("Park through the lazy poller: Parked() = %d", l.Parked())
	}
	l.Close()
	if p, err := l.Get(); p != nil || err != nil {
		t.Fatalf("Get after Close: %v, %v", p, err)
	}
	if New(a).Park(p1, f) {
		t.Fatal("Park on the closed poller succeeded")
	}
}
