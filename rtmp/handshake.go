package rtmp

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/yutopp/go-rtmp/handshake"
)

// serverHandshake runs the simple RTMP handshake (RTMP 1.0 §5.2) as the server.
//
// go-rtmp's handshake.HandshakeWithClient writes S0, S1 and S2 in three writes with a
// read in between; we read C0+C1 first and answer S0+S1+S2 in one write, so an RTMPT
// /send carrying C0+C1 gets all 3073 bytes back in the same reply (rtmpt.md §3.3) and a
// TCP peer gets one segment. S1's version is zero, so ffmpeg and librtmp do not ask for
// the digest (FP9) handshake. C2's echo is read but not verified (go-rtmp issue #51).
// The S0/S1/S2 layouts come from go-rtmp's handshake encoder.
func serverHandshake(rw io.ReadWriter, now time.Time) error {
	dec := handshake.NewDecoder(rw)
	var c0 handshake.S0C0
	if err := dec.DecodeS0C0(&c0); err != nil {
		return fmt.Errorf("read c0: %w", err)
	}
	if c0 != 3 {
		return fmt.Errorf("%w: c0 version %d (only plain RTMP 3 is served)", errBadHandshake, c0)
	}
	var c1 handshake.S1C1
	if err := dec.DecodeS1C1(&c1); err != nil {
		return fmt.Errorf("read c1: %w", err)
	}

	var out bytes.Buffer
	out.Grow(1 + 2*1536)
	enc := handshake.NewEncoder(&out)
	s0 := handshake.S0C0(3)
	ts := uint32(now.UnixMilli())
	s1 := handshake.S1C1{Time: ts}
	if _, err := rand.Read(s1.Random[:]); err != nil {
		return fmt.Errorf("s1 random: %w", err)
	}
	s2 := handshake.S2C2{Time: c1.Time, Time2: ts, Random: c1.Random}
	if err := enc.EncodeS0C0(&s0); err != nil {
		return err
	}
	if err := enc.EncodeS1C1(&s1); err != nil {
		return err
	}
	if err := enc.EncodeS2C2(&s2); err != nil {
		return err
	}
	if _, err := rw.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write s0s1s2: %w", err)
	}
	var c2 handshake.S2C2
	if err := dec.DecodeS2C2(&c2); err != nil {
		return fmt.Errorf("read c2: %w", err)
	}
	return nil
}
