package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// input is the FLV file the publisher loops.
type input struct {
	tags    []rtmptest.FLVTag
	keys    []uint64      // frameKey of every tag's payload
	loop    time.Duration // duration of one pass, timestamps of pass k are shifted by k×loop
	bytes   int           // audio and video payload bytes of one pass
	bitrate float64       // bits per second of audio and video payload
	video   int           // video tags per pass, sequence headers excluded
}

// loadInput reads path and works out its loop length and bitrate.
func loadInput(path string) (*input, error) {
	tags, err := rtmptest.ReadFLV(path)
	if err != nil {
		return nil, err
	}
	in := &input{tags: tags}
	var first, last, lastVideo uint32
	var frameGap uint32 = 40
	seen := false
	for _, t := range tags {
		in.keys = append(in.keys, frameKey(t.Payload))
		if t.TypeID != typeAudio && t.TypeID != typeVideo {
			continue
		}
		if !seen {
			first, seen = t.Timestamp, true
		}
		last = max(last, t.Timestamp)
		in.bytes += len(t.Payload)
		if t.TypeID == typeVideo {
			f := frame{typeID: typeVideo, length: len(t.Payload), b0: t.Payload[0], b1: t.Payload[1]}
			if !f.seqHeader() {
				if in.video > 0 && t.Timestamp > lastVideo {
					frameGap = t.Timestamp - lastVideo
				}
				lastVideo = t.Timestamp
				in.video++
			}
		}
	}
	if !seen || in.video == 0 {
		return nil, fmt.Errorf("%s: no video frames", path)
	}
	in.loop = time.Duration(last-first+frameGap) * time.Millisecond
	in.bitrate = float64(in.bytes) * 8 / in.loop.Seconds()
	return in, nil
}

// pubResult is what the publisher counted in the hold window.
type pubResult struct {
	err          error
	video, audio int    // frames sent in the window
	bytes        uint64 // audio and video payload bytes sent in the window
	late         time.Duration
}

// publish connects to addr, publishes app/stream and sends in's tags in
// real time, looping, until ctx ends or, once the plan is set, its stop
// time. Before each send it stores the send time of the tag's key in tab.
// ready is closed once the first pass's headers and first key frame are
// out (never if publishing fails before); the caller then sets plan.
func publish(ctx context.Context, addr, app, stream string, in *input, tab *sendTable, plan *atomic.Pointer[window], ready chan<- struct{}) (res pubResult) {
	readyOnce := false
	signal := func() {
		if !readyOnce {
			readyOnce = true
			close(ready)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := rtmptest.Dial(cctx, addr)
	cancel()
	if err != nil {
		res.err = fmt.Errorf("publisher: %w", err)
		return res
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	if err := c.Connect(app, "rtmp://"+addr+"/"+app); err != nil {
		res.err = fmt.Errorf("publisher: %w", err)
		return res
	}
	if err := c.Publish(stream); err != nil {
		res.err = fmt.Errorf("publisher: %w", err)
		return res
	}
	// Drain what the server sends (acks, statuses) so its reader never
	// stalls; it ends when the client is closed.
	drained := make(chan struct{})
	dctx, dcancel := context.WithCancel(ctx)
	go func() {
		defer close(drained)
		for dctx.Err() == nil {
			// A read timeout just loops; other errors (Close) end the drain.
			if _, err := c.ReadMessage(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return
			}
		}
	}()
	defer func() { dcancel(); c.Close(); <-drained }()

	start := time.Now()
	dl, ok := ctx.Deadline()
	if !ok {
		return pubResult{err: errors.New("publisher: no deadline")}
	}
	maxPasses := int(time.Until(dl)/in.loop) + 2
	for pass := range maxPasses {
		for i, t := range in.tags {
			if pass > 0 && (t.TypeID == typeData || isSeqHeaderTag(t)) {
				continue // metadata and sequence headers once, as an encoder does
			}
			due := start.Add(time.Duration(pass)*in.loop + time.Duration(t.Timestamp-in.tags[0].Timestamp)*time.Millisecond)
			w := plan.Load()
			if w != nil && due.After(tab.base.Add(time.Duration(w.stop))) {
				return res
			}
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return res
				case <-time.After(d):
				}
			} else {
				res.late = max(res.late, -d)
			}
			now := tab.now()
			tab.store(in.keys[i], now)
			ts := t.Timestamp + uint32((time.Duration(pass)*in.loop)/time.Millisecond)
			if err := c.WriteMedia(t.TypeID, ts, t.Payload); err != nil {
				res.err = fmt.Errorf("publisher: %w", err)
				return res
			}
			if t.TypeID == typeVideo && !isSeqHeaderTag(t) {
				signal() // the relay has a key frame to start players on
			}
			if w != nil && w.in(now) {
				switch t.TypeID {
				case typeVideo:
					res.video++
				case typeAudio:
					res.audio++
				}
				if t.TypeID != typeData {
					res.bytes += uint64(len(t.Payload))
				}
			}
		}
	}
	return res
}

func isSeqHeaderTag(t rtmptest.FLVTag) bool {
	if len(t.Payload) < 2 {
		return false
	}
	f := frame{typeID: t.TypeID, length: len(t.Payload), b0: t.Payload[0], b1: t.Payload[1]}
	return f.seqHeader()
}
