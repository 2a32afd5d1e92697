//go:build linux

package netio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { d.Close(); r.c.Close() })
	return r.c.(*net.TCPConn), d.(*net.TCPConn)
}

// TestRawConnWrite checks the raw writev paths: tryWritev writes what the socket takes
// and hands back the rest without waiting, writev then finishes it, and the peer gets
// every byte in order.
func TestRawConnWrite(t *testing.T) {
	a, b := tcpPair(t)
	a.SetWriteBuffer(16 << 10)
	b.SetReadBuffer(16 << 10)
	raw := New(a)
	if raw == nil {
		t.Fatal("no Conn for a TCP connection")
	}
	var want []byte
	var bufs [][]byte
	for i := range 64 {
		p := bytes.Repeat([]byte{byte(i)}, 32<<10+i)
		want = append(want, p...)
		bufs = append(bufs, p, nil) // empty buffers are skipped
	}
	n, rest, err := raw.TryWritev(bufs)
	if err != nil {
		t.Fatal(err)
	}
	if rest == nil || n <= 0 || n >= int64(len(want)) {
		t.Fatalf("tryWritev wrote %d of %d bytes, rest %d buffers: want a partial write", n, len(want), len(rest))
	}
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	a.SetWriteDeadline(time.Now().Add(10 * time.Second))
	m, err := raw.Writev(rest)
	if err != nil {
		t.Fatal(err)
	}
	if n+m != int64(len(want)) {
		t.Fatalf("wrote %d+%d bytes, want %d", n, m, len(want))
	}
	a.CloseWrite()
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("peer got %d bytes, not the %d written in order", len(all), len(want))
	}
}

// TestRawConnWriteDeadline checks that a blocking writev to a peer that reads nothing
// ends at the write deadline with a timeout error.
func TestRawConnWriteDeadline(t *testing.T) {
	a, _ := tcpPair(t)
	raw := New(a)
	a.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := raw.Writev([][]byte{make([]byte, 64<<20)})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writev to a stalled peer = %v, want a deadline error", err)
	}
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("%v is not a net.Error timeout", err)
	}
}

// TestRawConnRead checks the pooled reads: bytes in order across small and large
// reads, onDrain each time the socket runs dry, the read deadline, EOF, and no buffer
// held once everything was consumed.
func TestRawConnRead(t *testing.T) {
	a, b := tcpPair(t)
	raw := New(a)
	drains := 0
	raw.OnDrain = func() { drains++ }

	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := raw.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with nothing sent = %v, want a deadline error", err)
	}
	if drains == 0 {
		t.Fatal("onDrain not called before waiting")
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))

	want := make([]byte, 3*ReadBufSize+100)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		b.Write(want)
		b.CloseWrite()
	}()
	var got []byte
	p := make([]byte, 1000)
	for {
		n, err := raw.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d sent", len(got), len(want))
	}
	if raw.buf != nil {
		t.Fatal("read buffer held after everything was consumed")
	}
}
