package httptunnel

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// openConn opens a tunnel and returns it with the conn its handler got; the handler
// waits until the tunnel ends.
func openConn(t *testing.T, s *Server, conns <-chan net.Conn) (string, net.Conn) {
	t.Helper()
	id := open(t, s)
	return id, <-conns
}

func connServer(t *testing.T, cfg Config) (*Server, chan net.Conn) {
	conns := make(chan net.Conn, 1)
	s := newServer(t, cfg, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
		conns <- c
		<-ctx.Done()
	}))
	return s, conns
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// TestConnDeadlines: read and write deadlines behave like a TCP conn's.
func TestConnDeadlines(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, conns := connServer(t, Config{MaxPending: 10})
		id, c := openConn(t, s, conns)
		if got := c.RemoteAddr().String(); got != "192.0.2.1:1234" {
			t.Errorf("RemoteAddr %q", got)
		}
		buf := make([]byte, 10)

		// A deadline fires while Read is blocked.
		start := time.Now()
		c.SetReadDeadline(start.Add(100 * time.Millisecond))
		if _, err := c.Read(buf); !isTimeout(err) {
			t.Errorf("Read: %v, want a timeout", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("read deadline fired after %v", d)
		}

		// Extending a deadline while Read is blocked.
		start = time.Now()
		c.SetReadDeadline(start.Add(50 * time.Millisecond))
		done := make(chan error)
		go func() { _, err := c.Read(buf); done <- err }()
		time.Sleep(20 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if err := <-done; !isTimeout(err) {
			t.Errorf("Read: %v, want a timeout", err)
		}
		if d := time.Since(start); d != 120*time.Millisecond {
			t.Errorf("extended read deadline fired after %v, want 120ms", d)
		}

		// Cleared: Read gets the next /send body.
		c.SetReadDeadline(time.Time{})
		go func() {
			n, err := c.Read(buf)
			if err == nil && string(buf[:n]) != "hi" {
				err = errors.New("read " + string(buf[:n]))
			}
			done <- err
		}()
		synctest.Wait()
		post(t, s, path(cmdSend, id, 0), []byte("hi"))
		if err := <-done; err != nil {
			t.Errorf("Read after clearing the deadline: %v", err)
		}

		// A deadline in the past fails Read and Write at once.
		c.SetDeadline(time.Now().Add(-time.Second))
		if _, err := c.Read(buf); !isTimeout(err) {
			t.Errorf("Read past deadline: %v", err)
		}
		if n, err := c.Write([]byte("x")); n != 0 || !isTimeout(err) {
			t.Errorf("Write past deadline: %d, %v", n, err)
		}

		// Write fills the queue (MaxPending 10), then times out with a short count.
		c.SetDeadline(time.Time{})
		c.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
		if n, err := c.Write(make([]byte, 25)); n != 10 || !isTimeout(err) {
			t.Errorf("Write to a full queue: %d, %v; want 10 and a timeout", n, err)
		}
		// A poll makes room; a blocked Write resumes.
		c.SetWriteDeadline(time.Time{})
		go func() { _, err := c.Write(make([]byte, 8)); done <- err }()
		synctest.Wait()
		if r := post(t, s, path(cmdIdle, id, 1), []byte{0}); len(r) != 11 {
			t.Errorf("idle reply %d bytes, want 11", len(r))
		}
		if err := <-done; err != nil {
			t.Errorf("Write after a poll: %v", err)
		}
	})
}

// TestRing checks the output FIFO against bytes.Buffer with random writes and reads,
// and that it never grows beyond its limit.
func TestRing(t *testing.T) {
	t.Parallel()
	const limit = 10000
	rnd := rand.New(rand.NewPCG(1, 2))
	var q ring
	var ref bytes.Buffer
	var next byte
	for range 20000 {
		if rnd.IntN(2) == 0 {
			b := make([]byte, rnd.IntN(min(3000, limit-q.n)+1))
			for i := range b {
				b[i] = next
				next++
			}
			q.write(b, limit)
			ref.Write(b)
		} else {
			k := rnd.IntN(q.n + 1)
			got := q.read(nil, k)
			if want := ref.Next(k); !bytes.Equal(got, want) {
				t.Fatalf("read %d: got %v…, want %v…", k, got[:min(8, len(got))], want[:min(8, len(want))])
			}
		}
		if q.n != ref.Len() || len(q.buf) > limit {
			t.Fatalf("n %d, want %d; buffer %d, limit %d", q.n, ref.Len(), len(q.buf), limit)
		}
	}
}
