package rtmp

// Playback of recorded files (VOD) over RTMP: the decision between a live stream and
// a file in play, and the goroutine that feeds a file to a player at real-time pace
// through a relay.Pipe, so that the player's writer (writer.go) plays it like any
// hub stream. rtmp-interop.md has the status codes ffmpeg and Flash expect.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// VODSource opens recorded files for play (Config.VOD). cmd/mtrelay passes an
// adapter over httptunnel/vod.
type VODSource interface {
	// Open opens the file that a play of name (as the client sent it: "fixture",
	// "fixture.flv", "flv:fixture", maybe with "?query") in app asks for. An error
	// wrapping fs.ErrNotExist means there is no such file and the play may go
	// live; any other error (a refused name such as "../x", an unreadable file)
	// refuses the play with NetStream.Play.StreamNotFound.
	Open(app, name string) (VODFile, error)
}

// VODFile is an open recorded stream.
type VODFile interface {
	// ReadPacket returns the next packet, io.EOF at the end. After Open and after
	// SeekTo it first returns the metadata and sequence headers in force.
	ReadPacket() (*relay.Packet, error)
	// SeekTo moves to the keyframe at or before ms and returns its time in ms.
	SeekTo(ms int64) int64
	// Close releases the file.
	Close() error
}

// vodLead is how far ahead of real time a file is sent, so that a player's buffer
// fills at once.
const vodLead = 500 * time.Millisecond

// vodDiscontinuity: a jump in a file's timestamps larger than this (forwards) is not
// waited for; the real-time clock restarts at the next packet.
const vodDiscontinuity = 5 * time.Second

// vodPoll is how often the feeder looks again when the player's queue is full or
// its replies are still queued.
const vodPoll = 5 * time.Millisecond

// Start arguments of play (RTMP 1.0 §7.2.2.1). Flash and ffmpeg send them in ms on
// the wire: ffmpeg -2000 (its default), -1000 (-rtmp_live live), 0 (recorded).
func playLiveOnly(start float64) bool { return start == -1 || start == -1000 }

func playFromFile(start float64) bool { return start >= 0 && !math.IsInf(start, 1) }

// vodKeyName is the stream name without the "flv:" prefix and ".flv" suffix, as the
// live stream of the same name is keyed and as the access controller sees it.
func vodKeyName(name string) string {
	base, query, hasQuery := strings.Cut(name, "?")
	base = strings.TrimPrefix(base, "flv:")
	if len(base) > 4 && strings.EqualFold(base[len(base)-4:], ".flv") {
		base = base[:len(base)-4]
	}
	if hasQuery {
		return base + "?" + query
	}
	return base
}

// openVOD decides, for a play of name with start, whether a recorded file is a
// candidate: it returns the open file (nil: play live) and the name to key the
// stream by. ok is false when the play was refused here (a bad file name gets
// NetStream.Play.StreamNotFound).
func (c *conn) openVOD(sid uint32, name string, start float64) (vf VODFile, keyName string, ok bool) {
	src := c.srv.cfg.VOD
	if src == nil {
		return nil, name, true
	}
	keyName = vodKeyName(name)
	if playLiveOnly(start) {
		return nil, keyName, true
	}
	if !playFromFile(start) {
		// -2 and the like: live if live, else the file, else wait for live.
		if key, _ := relay.Key(c.app, keyName); c.isLive(key) {
			return nil, keyName, true
		}
	}
	vf, err := src.Open(c.app, name)
	switch {
	case err == nil:
		return vf, keyName, true
	case errors.Is(err, fs.ErrNotExist):
		c.log.Debug().Str("name", name).Err(err).Msg("no recorded file: playing live")
		return nil, keyName, true
	}
	c.log.Info().Str("name", name).Err(err).Msg("play refused")
	c.sendStatus(sid, "error", "NetStream.Play.StreamNotFound", "no such stream or file")
	return nil, name, false
}

func (c *conn) isLive(key string) bool {
	st, ok := c.srv.hub.Stream(key)
	return ok && st.Live
}

// vodPlay is one file being played on a message stream. Its feeder goroutine (run)
// is started by playVOD and waited for by endVOD, both on the connection's run
// goroutine.
type vodPlay struct {
	c     *conn
	file  VODFile // owned by run until done is closed
	pipe  *relay.Pipe
	sid   uint32
	key   string
	cmds  chan vodCmd // seek and pause commands from conn.run
	stop  context.CancelFunc
	done  chan struct{} // closed when run returns
	since time.Time
}

type vodCmdKind uint8

const (
	vodSeek vodCmdKind = iota + 1
	vodPause
	vodUnpause
)

type vodCmd struct {
	kind vodCmdKind
	ms   int64
}

// playVOD starts playing vf on ns (Play.Reset, Play.Start, |RtmpSampleAccess, then
// the file from start, or from 0 when start is not a position). It always takes vf.
func (c *conn) playVOD(ctx context.Context, ns *netStream, sid uint32, key string, vf VODFile, start float64) {
	at := int64(0)
	if playFromFile(start) {
		at = vf.SeekTo(int64(min(start, math.MaxInt32)))
	}
	ctx, cancel := context.WithCancel(ctx)
	v := &vodPlay{
		c:    c,
		file: vf,
		pipe: relay.NewPipe(relay.PipeOptions{Subscribe: relay.SubscribeOptions{Protocol: c.protocol, Remote: c.remote, OnWake: c.w.wakeHook()}}),
		sid:  sid, key: key,
		cmds:  make(chan vodCmd, 8),
		stop:  cancel,
		done:  make(chan struct{}),
		since: time.Now(),
	}
	ns.play, ns.key, ns.since, ns.vod = true, key, v.since, v
	c.lastKey = key
	c.sendControl(typeUserControl, append([]byte{0, userControlBegin}, be32(sid)...))
	c.sendStatus(sid, "status", "NetStream.Play.Reset", "playing and resetting "+key)
	c.sendStatus(sid, "status", "NetStream.Play.Start", "started playing "+key)
	c.sendData(sid, "|RtmpSampleAccess", true, true)
	c.w.play(v.pipe.Subscriber(), sid, key)
	go v.run(ctx)
	c.log.Info().Str("stream", key).Bool("vod", true).Int64("start_ms", at).Msg("play")
}

// endVOD stops the file played on ns and logs the end of the play.
func (c *conn) endVOD(ns *netStream, why string) {
	v := ns.vod
	ns.vod, ns.play = nil, false
	v.stop()
	<-v.done
	v.file.Close()
	st := c.w.stopPlay("")
	c.log.Info().Str("stream", ns.key).Bool("vod", true).Int64("packets", st.Packets).Int64("bytes", st.Bytes).
		Dur("duration", time.Since(ns.since)).Str("reason", why).Msg("play ended")
}

// onVODCommand handles seek(txn, null, ms), pause and pauseRaw(txn, null, pause,
// ms) (RTMP 1.0 §7.2.2.7, §7.2.2.8) on message stream sid.
func (c *conn) onVODCommand(sid uint32, name string, args []any) {
	ns := c.streams[sid]
	if ns == nil || ns.vod == nil {
		// Live streams cannot seek or pause. Level "status": ffmpeg treats an
		// error as fatal, and the play goes on.
		c.log.Debug().Str("command", name).Msg("seek/pause on a live stream ignored")
		if name == "seek" {
			c.sendStatus(sid, "status", "NetStream.Seek.Failed", "live streams cannot seek")
		}
		return
	}
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	cmd := vodCmd{kind: vodSeek}
	msArg := arg(1)
	if name != "seek" {
		cmd.kind = vodUnpause
		if p, _ := arg(1).(bool); p {
			cmd.kind = vodPause
		}
		msArg = arg(2)
	}
	if ms := amfNum(msArg); !math.IsNaN(ms) {
		cmd.ms = int64(min(max(ms, 0), math.MaxInt32))
	} else if cmd.kind == vodSeek {
		c.sendStatus(sid, "status", "NetStream.Seek.InvalidTime", "seek without a time")
		return
	}
	select {
	case ns.vod.cmds <- cmd:
	case <-ns.vod.done:
	}
}

// pendingLen returns how many bytes of replies wait in the writer.
func (w *writer) pendingLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// run feeds the file into the pipe at real-time pace, vodLead ahead, until ctx ends
// or the player's subscriber is closed. At the end of the file it waits for the
// player to take what is queued, then sends the end statuses and waits for a seek.
func (v *vodPlay) run(ctx context.Context) {
	defer close(v.done)
	defer func() {
		if r := recover(); r != nil {
			v.c.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("panic playing a recorded file")
			v.c.close()
		}
	}()
	var (
		pkt        *relay.Packet // read, not yet written
		paused     bool
		pausedAt   time.Time
		ended      bool
		anchored   bool // anchorTS plays at anchorWall
		anchorTS   int64
		anchorWall time.Time
		lastTS     int64
		timer      = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for {
		if pkt == nil && !paused && !ended {
			p, err := v.file.ReadPacket()
			if err != nil {
				ended = true
				if !errors.Is(err, io.EOF) {
					v.c.log.Warn().Str("stream", v.key).Err(err).Msg("recorded file: read failed, ending play")
				}
				if !v.finish(ctx) {
					return
				}
				continue
			}
			pkt = p
		}
		wait := time.Duration(-1) // -1: wait for a command only
		if pkt != nil && !paused {
			now := time.Now()
			if d := pkt.Timestamp - lastTS; !anchored || d > vodDiscontinuity.Milliseconds() || d < -1000 {
				anchored, anchorTS, anchorWall = true, pkt.Timestamp, now
			}
			wait = anchorWall.Add(time.Duration(pkt.Timestamp-anchorTS)*time.Millisecond - vodLead).Sub(now)
			if wait <= 0 {
				if v.pipe.Full() {
					wait = vodPoll
				} else {
					if err := v.pipe.Write(pkt); err != nil {
						return // the play was stopped
					}
					lastTS, pkt = pkt.Timestamp, nil
					continue
				}
			}
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-tc:
		case cmd := <-v.cmds:
			switch cmd.kind {
			case vodSeek:
				v.pipe.Flush()
				t := v.file.SeekTo(cmd.ms)
				pkt, ended, anchored = nil, false, false
				desc := fmt.Sprintf("seeking %d (keyframe at %d)", cmd.ms, t)
				v.status("NetStream.Seek.Notify", desc)
				v.status("NetStream.Play.Start", "playing "+v.key)
				v.c.log.Debug().Str("stream", v.key).Int64("ms", cmd.ms).Int64("keyframe_ms", t).Msg("seek")
			case vodPause:
				if !paused {
					paused, pausedAt = true, time.Now()
				}
				v.status("NetStream.Pause.Notify", "paused "+v.key)
			case vodUnpause:
				if paused {
					// The clock stood still while paused: what was ahead stays ahead.
					paused, anchorWall = false, anchorWall.Add(time.Since(pausedAt))
				}
				v.status("NetStream.Unpause.Notify", "unpaused "+v.key)
			}
			if !v.awaitReplies(ctx) {
				return
			}
		}
	}
}

// status queues an onStatus for the player. Replies go out ahead of media the writer
// has not taken yet, hence awaitReplies before more media is written.
func (v *vodPlay) status(code, desc string) {
	v.send(appendStatus(nil, v.c.srv.cfg.ChunkSize, v.sid, "status", code, desc))
}

func (v *vodPlay) send(b []byte) {
	if !v.c.w.enqueue(b) {
		v.c.close() // the peer reads nothing: as conn.send does, end the connection
	}
}

// awaitReplies waits until the writer took the queued replies, so that media written
// from now on follows them. It reports false when ctx ended.
func (v *vodPlay) awaitReplies(ctx context.Context) bool {
	for v.c.w.pendingLen() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(vodPoll):
		}
	}
	return true
}

// finish ends the file's playback once the player took every queued packet:
// onStatus NetStream.Play.Complete, onStatus NetStream.Play.Stop, StreamEOF (Play.Stop
// ends ffmpeg). FMS sends Play.Complete as an onPlayStatus data message instead, but
// ffmpeg's FLV demuxer turns that into a new data stream at the end, and ffprobe 5.1
// -count_frames crashes on a stream added after the start: a status command carries
// the same code without reaching the demuxer. It reports false when ctx ended.
func (v *vodPlay) finish(ctx context.Context) bool {
	for v.pipe.Len() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(vodPoll):
		}
	}
	cs := v.c.srv.cfg.ChunkSize
	b := appendStatus(nil, cs, v.sid, "status", "NetStream.Play.Complete", "played "+v.key+" to the end")
	b = appendStatus(b, cs, v.sid, "status", "NetStream.Play.Stop", "stopped playing "+v.key)
	b = chunk.AppendMessage(b, cs, csidControl, typeUserControl, 0, 0, append([]byte{0, userControlEOF}, be32(v.sid)...))
	v.send(b)
	v.c.log.Debug().Str("stream", v.key).Msg("recorded file played to the end")
	return true
}
