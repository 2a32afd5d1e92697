package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// frame is one audio or video message as a player sees it.
type frame struct {
	typeID uint8
	key    uint64 // frameKey of the payload
	length int
	b0, b1 byte // first two payload bytes: FLV AUDIODATA/VIDEODATA header
}

// keyframe reports whether f is a video key frame that is not a sequence
// header (FLV 10.1 E.4.3.1; Enhanced RTMP ExVideoTagHeader when bit 7 is set).
func (f *frame) keyframe() bool {
	if f.typeID != typeVideo || f.length < 2 {
		return false
	}
	if f.b0&0x80 != 0 { // Enhanced RTMP: FrameType in bits 4-6, PacketType in 0-3
		return (f.b0>>4)&7 == 1 && f.b0&0x0f != 0
	}
	return f.b0>>4 == 1 && !(f.b0&0x0f == 7 && f.b1 == 0)
}

// seqHeader reports whether f is an AVC or AAC sequence header, or an
// Enhanced RTMP SequenceStart.
func (f *frame) seqHeader() bool {
	switch {
	case f.typeID == typeVideo && f.b0&0x80 != 0:
		return f.b0&0x0f == 0
	case f.typeID == typeVideo:
		return f.b0&0x0f == 7 && f.b1 == 0
	case f.typeID == typeAudio:
		return f.b0>>4 == 10 && f.b1 == 0
	}
	return false
}

// source is one player's connection: RTMP (over TCP or RTMPT) or HTTP-FLV.
// All methods are called from the player goroutine only.
type source interface {
	nextFrame(f *frame) error
	bytesRead() uint64
	setDeadline(t time.Time)
	close()
}

// sendTable maps a frame key to the latest wall-clock time the publisher
// sent a frame with that key. The map is built once from the input file and
// never changes; the times are atomics written by the publisher and read by
// every player. The fixture loops every ~10 s and latency is milliseconds,
// so the latest send time of a key is the send time of the frame received.
type sendTable struct {
	slot map[uint64]int      // immutable after newSendTable
	at   []atomic.Int64      // ns since base of the latest send, 0 before the first
	base time.Time           // monotonic clock origin of at
	ambi map[uint64]struct{} // keys shared by several tags (identical payloads), immutable
}

func newSendTable(keys []uint64, base time.Time) *sendTable {
	t := &sendTable{slot: make(map[uint64]int, len(keys)), ambi: map[uint64]struct{}{}, base: base}
	for _, k := range keys {
		if _, ok := t.slot[k]; ok {
			t.ambi[k] = struct{}{}
			continue
		}
		t.slot[k] = len(t.slot)
	}
	t.at = make([]atomic.Int64, len(t.slot))
	return t
}

// now returns nanoseconds on the monotonic clock since base.
func (t *sendTable) now() int64 { return int64(time.Since(t.base)) }

func (t *sendTable) store(key uint64, ns int64) {
	if i, ok := t.slot[key]; ok {
		t.at[i].Store(ns)
	}
}

// lookup returns the latest send time of key and whether that time belongs
// to one tag only (so a latency computed from it is exact).
func (t *sendTable) lookup(key uint64) (ns int64, exact bool) {
	i, ok := t.slot[key]
	if !ok {
		return 0, false
	}
	_, shared := t.ambi[key]
	return t.at[i].Load(), !shared
}

// window is the measurement plan shared by the publisher and every player,
// in nanoseconds since sendTable.base.
type window struct {
	start, end int64 // the hold window
	stop       int64 // players stop reading at stop (end plus a drain)
}

func (w window) in(ns int64) bool { return ns >= w.start && ns < w.end }

// playerResult is what one player measured. Counts are for frames whose
// send time (video, audio) or receive time (bytes, gaps) falls in the hold
// window.
type playerResult struct {
	err     error // connection or play failed: the player never played
	dropErr error // the connection ended before the window did

	connect       time.Duration // dial → play sent
	firstKeyframe time.Duration // play sent → first video key frame; -1 if none
	firstMedia    time.Duration // play sent → first audio or video; -1 if none
	firstIsKey    bool          // the first video frame that is not a sequence header was a key frame

	bytes        uint64 // wire bytes read in the window
	video, audio int    // frames received whose send time is in the window
	latencies    []int32
	maxGap       time.Duration // longest time between two frames received in the window
	maxGapAt     time.Duration // when that gap ended, since the window's start
}

// playerConfig is what runPlayer needs to connect.
type playerConfig struct {
	proto          string // rtmp, rtmpt or httpflv
	rtmpAddr       string // host:port for rtmp
	httpAddr       string // host:port for rtmpt and httpflv
	app, stream    string
	connectTimeout time.Duration
	rtmpt          *rtmptClient // shared HTTP client for rtmpt
}

// runPlayer connects one player, reads until w.stop and returns what it
// measured. Every wait is bounded: connecting by connectTimeout, reading by
// w.stop.
func runPlayer(ctx context.Context, pc playerConfig, tab *sendTable, w window) (res playerResult) {
	res.firstKeyframe, res.firstMedia = -1, -1
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, pc.connectTimeout)
	src, err := dialSource(cctx, pc)
	cancel()
	if err != nil {
		res.err = err
		return res
	}
	defer src.close()
	played := time.Now()
	res.connect = played.Sub(t0)

	// Stop at w.stop, or at once when ctx ends.
	stopAt := tab.base.Add(time.Duration(w.stop))
	src.setDeadline(stopAt)
	stop := context.AfterFunc(ctx, func() { src.setDeadline(time.Unix(1, 0)) })
	defer stop()

	var f frame
	var lastRecv int64
	var bytesStart uint64
	startSeen, endSeen := false, false
	sawVideo := false
	for {
		err := src.nextFrame(&f)
		now := tab.now()
		if !startSeen && now >= w.start {
			startSeen, bytesStart = true, src.bytesRead()
		}
		if !endSeen && now >= w.end {
			endSeen = true
			if startSeen {
				res.bytes = src.bytesRead() - bytesStart
			}
		}
		if err != nil {
			if now < w.end && ctx.Err() == nil {
				res.dropErr = err
				if startSeen {
					res.bytes = src.bytesRead() - bytesStart
				}
			}
			return res
		}
		recv := time.Now()
		if res.firstMedia < 0 {
			res.firstMedia = recv.Sub(played)
		}
		if f.typeID == typeVideo && !f.seqHeader() {
			if !sawVideo {
				sawVideo, res.firstIsKey = true, f.keyframe()
			}
			if res.firstKeyframe < 0 && f.keyframe() {
				res.firstKeyframe = recv.Sub(played)
			}
		}
		if w.in(now) {
			if lastRecv != 0 && w.in(lastRecv) {
				if g := time.Duration(now - lastRecv); g > res.maxGap {
					res.maxGap, res.maxGapAt = g, time.Duration(now-w.start)
				}
			}
		}
		lastRecv = now
		sent, exact := tab.lookup(f.key)
		if sent == 0 || !w.in(sent) {
			continue
		}
		switch f.typeID {
		case typeVideo:
			res.video++
			if exact {
				res.latencies = append(res.latencies, int32(min((now-sent)/1e3, 1<<31-1)))
			}
		case typeAudio:
			res.audio++
		}
	}
}

// dialSource connects and starts playing over pc.proto.
func dialSource(ctx context.Context, pc playerConfig) (source, error) {
	switch pc.proto {
	case "rtmp", "rtmpt":
		var conn net.Conn
		var err error
		addr := pc.rtmpAddr
		scheme := "rtmp"
		if pc.proto == "rtmpt" {
			addr, scheme = pc.httpAddr, "rtmpt"
			conn, err = pc.rtmpt.open(ctx)
		} else {
			var d net.Dialer
			conn, err = d.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		s, err := newRTMPSession(ctx, conn)
		if err == nil {
			err = s.play(pc.app, scheme+"://"+addr+"/"+pc.app, pc.stream)
		}
		if err != nil {
			conn.Close()
			if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("%w (connect timeout)", err)
			}
			return nil, err
		}
		return s, nil
	case "httpflv":
		return dialHTTPFLV(ctx, "http://"+pc.httpAddr+"/"+pc.app+"/"+pc.stream+".flv")
	}
	return nil, fmt.Errorf("unknown protocol %q", pc.proto)
}
