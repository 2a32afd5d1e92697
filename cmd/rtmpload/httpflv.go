package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// An HTTP-FLV player: GET http://host/app/stream.flv and read the body as
// an FLV file (FLV 10.1 Annex E) that never ends. Like the RTMP player it
// never copies a tag body: it only looks at the first and last bytes.

// errBadFLV is a body that is not FLV.
var errBadFLV = errors.New("rtmpload: bad flv")

// flvClient is shared by every HTTP-FLV player; each GET holds its own TCP
// connection for as long as it plays.
var flvClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}}

// flvSource reads one HTTP-FLV response. Owned by the player goroutine,
// except setDeadline, which may be called from another.
type flvSource struct {
	body   io.ReadCloser
	br     *bufio.Reader
	n      uint64
	cancel context.CancelFunc // ends the request
	hdr    [flvTagHeaderLen]byte
	acc    keyAcc

	mu    sync.Mutex
	timer *time.Timer // guarded by mu: fires cancel at the deadline
}

const (
	flvTagHeaderLen = 11
	maxFLVTag       = 16 << 20
)

// dialHTTPFLV sends the GET and reads the FLV header, both within ctx.
func dialHTTPFLV(ctx context.Context, url string) (*flvSource, error) {
	rctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := flvClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("http-flv get: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("http-flv get %s: %s: %w", url, resp.Status, errBadFLV)
	}
	s := &flvSource{body: resp.Body, br: bufio.NewReaderSize(resp.Body, readBufferSize), cancel: cancel}
	// FLV header (E.2): "FLV", version, flags, DataOffset; then
	// PreviousTagSize0.
	var h [9]byte
	if err := s.readFull(h[:]); err != nil || string(h[:3]) != "FLV" {
		s.close()
		return nil, fmt.Errorf("http-flv header: %v: %w", err, errBadFLV)
	}
	off := binary.BigEndian.Uint32(h[5:9])
	if off < 9 || off > 1024 {
		s.close()
		return nil, fmt.Errorf("http-flv data offset %d: %w", off, errBadFLV)
	}
	if _, err := s.br.Discard(int(off) - 9 + 4); err != nil {
		s.close()
		return nil, fmt.Errorf("http-flv header: %w", err)
	}
	s.n += uint64(off) - 9 + 4
	if !stop() {
		s.close()
		return nil, fmt.Errorf("http-flv: %w", context.Cause(ctx))
	}
	return s, nil
}

func (s *flvSource) readFull(p []byte) error {
	n, err := io.ReadFull(s.br, p)
	s.n += uint64(n)
	return err
}

// nextFrame reads tags (E.4.1) until an audio or video one.
func (s *flvSource) nextFrame(f *frame) error {
	for {
		if err := s.readFull(s.hdr[:]); err != nil {
			return err
		}
		typeID := s.hdr[0] & 0x1f
		size := int(s.hdr[1])<<16 | int(s.hdr[2])<<8 | int(s.hdr[3])
		if size > maxFLVTag {
			return fmt.Errorf("flv tag of %d bytes: %w", size, errBadFLV)
		}
		s.acc.reset()
		for left := size + 4; left > 0; { // data, then PreviousTagSize
			p, err := s.br.Peek(min(left, s.br.Size()))
			if len(p) == 0 && err != nil {
				return noEOF(err)
			}
			if data := min(len(p), left-4); data > 0 {
				s.acc.write(p[:data])
			}
			_, _ = s.br.Discard(len(p))
			s.n += uint64(len(p))
			left -= len(p)
		}
		if typeID != typeAudio && typeID != typeVideo {
			continue
		}
		*f = frame{typeID: typeID, key: s.acc.sum(), length: size}
		if size > 0 {
			f.b0 = s.acc.head[0]
		}
		if size > 1 {
			f.b1 = s.acc.head[1]
		}
		return nil
	}
}

func (s *flvSource) bytesRead() uint64 { return s.n }

// setDeadline cancels the request at t.
func (s *flvSource) setDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(time.Until(t), s.cancel)
}

func (s *flvSource) close() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.cancel()
	s.body.Close()
}
