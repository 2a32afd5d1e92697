//go:build !linux

package netio

import "net"

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
