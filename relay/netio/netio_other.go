//go:build !linux

package netio

import (
	"errors"
	"net"
)

// ReadBufSize is the size of the pooled read buffers (Linux only).
const ReadBufSize = 4 << 10

// Conn is Linux only (netio_linux.go); elsewhere New returns nil and connections use
// net.Conn.
type Conn struct {
	// OnDrain is called when Read is about to wait (Linux only).
	OnDrain func()
}

// New returns nil: raw socket I/O is Linux only.
func New(net.Conn) *Conn { return nil }

// Read is never called: New returns nil.
func (*Conn) Read([]byte) (int, error) { panic("netio: not supported") }

// Writev is never called: New returns nil.
func (*Conn) Writev([][]byte) (int64, error) { panic("netio: not supported") }

// TryWritev is never called: New returns nil.
func (*Conn) TryWritev([][]byte) (int64, [][]byte, error) { panic("netio: not supported") }

// Poller is Linux only (poller_linux.go).
type Poller struct{}

// NewPoller returns an error: parking is Linux only.
func NewPoller() (*Poller, error) { return nil, errors.New("netio: poller is Linux only") }

// Close does nothing.
func (*Poller) Close() error { return nil }

// Parked returns 0.
func (*Poller) Parked() int { return 0 }

// Park is never called: New returns nil.
func (*Conn) Park(*Poller, func()) bool { return false }

// Shut is never called: New returns nil.
func (*Conn) Shut() func() { return nil }
