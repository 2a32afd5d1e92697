//go:build linux

// Package netio does the relay's socket I/O on plain TCP connections with raw,
// non-blocking system calls (Linux), for the RTMP and HTTP-FLV outputs.
//
// The hot path of a relay is thousands of small writev calls a second and a few
// reads. Go's net package makes each one through syscall.Syscall, whose
// entersyscall wakes the runtime's sysmon thread from its deep sleep whenever the
// process was idle; sysmon then polls every 20 µs for a millisecond or more. A
// relay is idle between two media messages of its publisher (about 70 a second),
// so every message woke sysmon and cost about 60 extra thread switches on the
// relay's core (half of all its context switches at 500 players). The sockets are
// non-blocking, so these reads and writes never block in the kernel: Conn makes them
// with syscall.RawSyscall inside syscall.RawConn callbacks, which keep the poller's
// deadlines, locking and readiness waits but skip entersyscall.
//
// Reading also holds no buffer while a connection is idle: a read takes a 4 KiB
// buffer from a pool only when the socket has data, and gives it back once the
// connection has consumed it (most connections are players that send nothing).
package netio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// maxIOV is the most iovecs one writev takes (IOV_MAX on Linux).
const maxIOV = 1024

// smallIOV iovecs live on the stack; bigger batches take a pooled array.
const smallIOV = 16

// ReadBufSize is the size of the pooled read buffers.
const ReadBufSize = 4 << 10

var (
	readBufPool = sync.Pool{New: func() any { b := make([]byte, ReadBufSize); return &b }}
	iovPool     = sync.Pool{New: func() any { v := make([]syscall.Iovec, maxIOV); return &v }}
)

// Conn reads and writes a TCP socket with raw system calls. Its read half (Read) is
// for one goroutine at a time, its write half (Writev, TryWritev) likewise; the two
// halves may be used at once.
type Conn struct {
	rc           syscall.RawConn // immutable
	laddr, raddr net.Addr        // immutable; for errors

	// OnDrain, if set, is called on the reading goroutine each time Read finds no
	// data and is about to wait: a publisher's reader flushes what it published
	// (relay.Publisher.Flush), so packets that arrived together go out together. Set
	// it before the first Read.
	OnDrain func()

	// Read half, owned by the reader. buf holds data [r:w] not yet consumed; it is
	// nil (returned to readBufPool) when r == w.
	buf    *[]byte
	r, w   int
	rerr   error
	readFn func(fd uintptr) bool // immutable: doRead, bound once

	// Write half: the arguments and results of writeFn and tryFn.
	wbufs   [][]byte // what is left to write
	wn      int64
	werr    error
	writeFn func(fd uintptr) bool // immutable: doWrite, bound once
	tryFn   func(fd uintptr) bool // immutable: doTry, bound once

	// Parking (poller_linux.go).
	pmu    sync.Mutex
	shut   bool    // guarded by pmu: Shut was called; never park again
	poller *Poller // guarded by pmu: where c is parked, or nil
	parkID uint64  // guarded by pmu: the registration id while parked, else 0
	parkFn func()  // guarded by pmu: what runs when c has input
}

// New returns a Conn for nc, or nil when nc is not a plain TCP connection: a
// *net.TCPConn, or a type that embeds one (a wrapper that only adds socket options).
// TLS connections and tunnels keep using nc.
func New(nc net.Conn) *Conn {
	sc, ok := nc.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil
	}
	if _, tcp := nc.LocalAddr().(*net.TCPAddr); !tcp {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &Conn{rc: rc, laddr: nc.LocalAddr(), raddr: nc.RemoteAddr()}
	r.readFn, r.writeFn, r.tryFn = r.doRead, r.doWrite, r.doTry
	return r
}

func (r *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.laddr, Addr: r.raddr, Err: err}
}

// Read reads like a bufio.Reader over the connection, honouring its read deadline.
// It returns io.EOF when the peer closed the connection.
func (r *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.r == r.w {
		r.rerr = nil
		if err := r.rc.Read(r.readFn); err != nil {
			return 0, err
		}
		if r.rerr != nil {
			return 0, r.rerr
		}
	}
	n := copy(p, (*r.buf)[r.r:r.w])
	r.r += n
	if r.r == r.w {
		r.release()
	}
	return n, nil
}

// release gives the read buffer back to the pool.
func (r *Conn) release() {
	if r.buf != nil {
		readBufPool.Put(r.buf)
		r.buf = nil
	}
	r.r, r.w = 0, 0
}

func (r *Conn) doRead(fd uintptr) bool {
	buf := readBufPool.Get().(*[]byte)
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&(*buf)[0])), uintptr(len(*buf)))
		switch e {
		case 0:
			if n == 0 {
				readBufPool.Put(buf)
				r.rerr = io.EOF
				return true
			}
			r.buf, r.r, r.w = buf, 0, int(n)
			return true
		case syscall.EAGAIN:
			readBufPool.Put(buf)
			if r.OnDrain != nil {
				r.OnDrain()
			}
			return false // wait for readability (or the deadline)
		case syscall.EINTR:
			continue
		}
		readBufPool.Put(buf)
		r.rerr = r.opError("read", os.NewSyscallError("read", e))
		return true
	}
}

// Writev writes all of bufs, waiting for the socket to drain as needed (within the
// connection's write deadline). It returns the bytes written. bufs is consumed.
func (r *Conn) Writev(bufs [][]byte) (int64, error) {
	r.wbufs, r.wn, r.werr = bufs, 0, nil
	err := r.rc.Write(r.writeFn)
	r.wbufs = nil
	if err == nil {
		err = r.werr
	}
	return r.wn, err
}

// TryWritev makes one non-blocking attempt to write bufs and returns the bytes
// written and what is left (nil when everything went out). It never waits.
func (r *Conn) TryWritev(bufs [][]byte) (int64, [][]byte, error) {
	r.wbufs, r.wn, r.werr = bufs, 0, nil
	err := r.rc.Write(r.tryFn)
	rest := r.wbufs
	r.wbufs = nil
	if err == nil {
		err = r.werr
	}
	if len(rest) == 0 {
		rest = nil
	}
	return r.wn, rest, err
}

func (r *Conn) doWrite(fd uintptr) bool {
	for len(r.wbufs) > 0 {
		if !r.writeOnce(fd) {
			return false
		}
		if r.werr != nil {
			return true
		}
	}
	return true
}

func (r *Conn) doTry(fd uintptr) bool {
	for len(r.wbufs) > 0 && r.werr == nil {
		if !r.writeOnce(fd) {
			break // the socket buffer is full: the caller hands the rest over
		}
	}
	return true
}

// writeOnce makes one writev of (the first maxIOV of) r.wbufs and consumes what it
// wrote. It reports false when the socket buffer is full (EAGAIN).
func (r *Conn) writeOnce(fd uintptr) bool {
	var (
		small [smallIOV]syscall.Iovec
		iov   = small[:0]
		big   *[]syscall.Iovec
	)
	if len(r.wbufs) > smallIOV {
		big = iovPool.Get().(*[]syscall.Iovec)
		iov = (*big)[:0]
	}
	for _, b := range r.wbufs {
		if len(iov) == cap(iov) {
			break
		}
		if len(b) == 0 {
			continue
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	ok := true
	if len(iov) == 0 {
		r.wbufs = r.wbufs[:0]
	} else {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		for e == syscall.EINTR {
			n, _, e = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		}
		switch e {
		case 0:
			r.wn += int64(n)
			r.consume(int64(n))
		case syscall.EAGAIN:
			ok = false
		default:
			r.werr = r.opError("write", os.NewSyscallError("writev", e))
		}
	}
	if big != nil {
		clear(iov) // do not keep shared media bodies reachable from the pool
		iovPool.Put(big)
	}
	return ok
}

// consume drops n written bytes from the front of r.wbufs.
func (r *Conn) consume(n int64) {
	bufs := r.wbufs
	for len(bufs) > 0 {
		if l := int64(len(bufs[0])); l <= n {
			n -= l
			bufs[0] = nil
			bufs = bufs[1:]
			continue
		}
		bufs[0] = bufs[0][n:]
		break
	}
	r.wbufs = bufs
}
