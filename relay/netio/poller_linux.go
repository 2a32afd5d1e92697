//go:build linux

package netio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Poller lets connections that wait for their peer park without a goroutine: a parked
// Conn is watched for input by one epoll instance, and the function it parked with
// runs on a new goroutine once input (or the peer's hang-up) arrives.
//
// A relay's players send almost nothing after they start playing (an acknowledgement
// every few megabytes), yet a goroutine blocked in Read holds a stack of 8 KiB or
// more for each of them; that was a third of the relay's memory at 500 players. The
// epoll instance itself is watched by Go's netpoller, so the Poller costs one parked
// goroutine and no thread.
//
// Conn.Park registers, Conn.Shut unregisters before the connection is closed (epoll
// forgets a closed descriptor silently, and its number may be reused at once).
type Poller struct {
	f  *os.File        // the epoll descriptor, non-blocking, in Go's netpoller
	rc syscall.RawConn // f's

	mu     sync.Mutex
	conns  map[uint64]*Conn // guarded by mu: parked connections by registration id
	nextID uint64           // guarded by mu
	closed bool             // guarded by mu
}

// NewPoller starts a Poller. Close stops it.
func NewPoller() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netio: epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netio: epoll non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("netio: epoll: %w", err)
	}
	p := &Poller{f: f, rc: rc, conns: make(map[uint64]*Conn)}
	go p.loop()
	return p, nil
}

// Close stops the poller. Connections still parked stay parked: their owner closes
// them (Conn.Shut returns their function).
func (p *Poller) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return p.f.Close()
}

// Parked returns the number of parked connections.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// loop waits for parked connections to become readable and resumes them.
func (p *Poller) loop() {
	events := make([]syscall.EpollEvent, 64)
	for {
		var n int
		err := p.rc.Read(func(fd uintptr) bool {
			for {
				var e error
				n, e = syscall.EpollWait(int(fd), events, 0)
				if e == syscall.EINTR {
					continue
				}
				return n > 0 // none ready: wait in Go's netpoller for the epoll fd
			}
		})
		if err != nil {
			return // closed
		}
		for i := range events[:n] {
			p.fire(eventID(&events[i]))
		}
	}
}

// fire resumes the connection registered as id, unless Shut took it first.
func (p *Poller) fire(id uint64) {
	p.mu.Lock()
	c := p.conns[id]
	delete(p.conns, id)
	p.mu.Unlock()
	if c == nil {
		return
	}
	c.pmu.Lock()
	if c.parkID != id {
		c.pmu.Unlock()
		return
	}
	fn := c.unparkLocked()
	c.pmu.Unlock()
	go fn()
}

func (p *Poller) add(c *Conn) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, false
	}
	p.nextID++
	p.conns[p.nextID] = c
	return p.nextID, true
}

func (p *Poller) remove(id uint64) {
	p.mu.Lock()
	delete(p.conns, id)
	p.mu.Unlock()
}

func (p *Poller) ctl(op int, fd uintptr, ev *syscall.EpollEvent) error {
	var err error
	cerr := p.rc.Control(func(epfd uintptr) {
		err = syscall.EpollCtl(int(epfd), op, int(fd), ev)
	})
	return errors.Join(cerr, err)
}

// The epoll event's 64-bit user data carries the registration id.
func setEventID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func eventID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Park hands c to p until its peer sends something or hangs up; then fn runs on a new
// goroutine, which owns c's read half again. It is for the goroutine that owns the
// read half, which must return after a true result without touching c's read half.
// Park reports false, and c stays with the caller, when c has unread input buffered,
// Shut was called, or p is closed.
func (c *Conn) Park(p *Poller, fn func()) bool {
	if c.r != c.w || !c.quiet() {
		return false // input (or the peer's end) is waiting: read it first
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.shut {
		return false
	}
	id, ok := p.add(c)
	if !ok {
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setEventID(&ev, id)
	var err error
	cerr := c.rc.Control(func(fd uintptr) { err = p.ctl(syscall.EPOLL_CTL_ADD, fd, &ev) })
	if cerr != nil || err != nil {
		p.remove(id)
		return false
	}
	c.poller, c.parkID, c.parkFn = p, id, fn
	return true
}

// quiet reports whether the socket has nothing to read: no data, no end of stream,
// no error. It peeks without consuming anything.
func (c *Conn) quiet() bool {
	var b [1]byte
	var e syscall.Errno
	cerr := c.rc.Control(func(fd uintptr) {
		for {
			_, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			if e != syscall.EINTR {
				return
			}
		}
	})
	return cerr == nil && e == syscall.EAGAIN
}

// unparkLocked removes c's registration and returns its function. c.pmu must be held
// and c parked.
func (c *Conn) unparkLocked() func() {
	c.poller.remove(c.parkID)
	_ = c.rc.Control(func(fd uintptr) { _ = c.poller.ctl(syscall.EPOLL_CTL_DEL, fd, nil) })
	fn := c.parkFn
	c.poller, c.parkID, c.parkFn = nil, 0, nil
	return fn
}

// Shut marks c as closing: it never parks again. If it is parked now, Shut takes it
// back from the poller and returns the function it parked with, which the caller runs
// (on a goroutine of its own) after closing the connection, so the owner of the read
// half sees the close. Otherwise it returns nil. Call it before closing the
// connection; it is safe from any goroutine and more than once.
func (c *Conn) Shut() func() {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	c.shut = true
	if c.parkID == 0 {
		return nil
	}
	return c.unparkLocked()
}
