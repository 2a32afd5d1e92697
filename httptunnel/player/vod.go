package player

// VOD on the player page: GET /play/vod?file={path} serves page/vod.html, which plays
// GET /play/vod.mp4?file={path}[&start={ms}]: the file (httptunnel/vod) fed into a
// relay.Pipe at real-time pace, vodLead ahead, and through the same fMP4 muxer as a
// live viewer.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/vod"
	"github.com/mtrelay/mtrelay/relay"
)

//go:embed page/vod.html
var vodPage []byte

// vodLead is how far ahead of real time a file is sent to the page: its buffer.
const vodLead = 3 * time.Second

// VODSource opens recorded files by name (a path relative to a VOD directory, as in
// /api/recordings); cmd/mtrelay adapts httptunnel/vod. An error wrapping
// fs.ErrNotExist or fs.ErrInvalid (a refused name) answers 404.
type VODSource interface {
	OpenVOD(name string) (VODFile, error)
}

// VODFile is an open recorded file (httptunnel/vod.File).
type VODFile interface {
	// ReadPacket returns the next packet, io.EOF at the end; metadata and sequence
	// headers come first after opening and after SeekTo.
	ReadPacket() (*relay.Packet, error)
	// SeekTo moves to the keyframe at or before ms and returns its time.
	SeekTo(ms int64) int64
	// Duration is the time of the last frame, in ms.
	Duration() int64
	HasAudio() bool
	HasVideo() bool
	Close() error
}

// MountVOD registers GET /play/vod (the VOD page) and GET /play/vod.mp4 (its fMP4
// stream) on mux, serving the files of src. Viewers count in Viewers and end on Close
// like live ones.
func (h *Handler) MountVOD(mux *http.ServeMux, src VODSource) {
	mux.HandleFunc("GET /play/vod", func(w http.ResponseWriter, r *http.Request) {
		if name := r.URL.Query().Get("file"); name == "" || len(name) > 1024 {
			http.NotFound(w, r)
			return
		}
		writePage(w, vodPage)
	})
	mux.HandleFunc("GET /play/vod.mp4", func(w http.ResponseWriter, r *http.Request) { h.serveVOD(w, r, src) })
}

// serveVOD streams one file as fMP4 to one page viewer.
func (h *Handler) serveVOD(w http.ResponseWriter, r *http.Request, src VODSource) {
	name := r.URL.Query().Get("file")
	log := h.log.With().Str("file", name).Str("remote", r.RemoteAddr).Logger()
	if _, err := h.authorize(w, r, vod.FileKey(name)); err != nil {
		log.Warn().Err(err).Msg("vod page viewer refused")
		return
	}
	f, err := src.OpenVOD(name)
	if err != nil {
		ev := log.Info()
		if errors.Is(err, fs.ErrNotExist) {
			ev = log.Debug()
		} else if !errors.Is(err, fs.ErrInvalid) {
			log.Warn().Err(err).Msg("vod page request failed")
			http.Error(w, "player: cannot open the file", http.StatusInternalServerError)
			return
		}
		ev.Err(err).Msg("vod page request refused")
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	if !f.HasVideo() && !f.HasAudio() {
		http.Error(w, "player: no audio or video in the file", http.StatusUnsupportedMediaType)
		return
	}
	at := int64(0)
	if s := r.URL.Query().Get("start"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			http.Error(w, "player: bad start", http.StatusBadRequest)
			return
		}
		at = f.SeekTo(ms)
	}
	if !h.admit(w) {
		return
	}
	defer h.leave()
	ctx, cancel, release := h.viewerContext(r.Context())
	defer release()

	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.Header().Set("X-Duration", strconv.FormatInt(f.Duration(), 10))
	w.Header().Set("X-Start", strconv.FormatInt(at, 10))
	w.Header().Set("Access-Control-Expose-Headers", "X-Codecs, X-Duration, X-Start")

	pipe := relay.NewPipe(relay.PipeOptions{Subscribe: relay.SubscribeOptions{Protocol: Protocol, Remote: r.RemoteAddr}})
	sub := pipe.Subscriber()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feedVOD(ctx, f, pipe, log)
	}()
	rc := http.NewResponseController(w)
	err = h.safeStream(ctx, rc, w, sub, log)
	sub.Close() // stops the feeder if it still runs
	cancel(nil)
	<-fed
	if errors.Is(err, io.EOF) {
		err = nil
	}
	ss := sub.Stats()
	log.Debug().AnErr("reason", err).Int64("packets", ss.Packets).Int64("start_ms", at).Msg("vod page viewer left")
	if errors.Is(err, ErrPanic) {
		panic(http.ErrAbortHandler)
	}
}

// feedVOD writes the file into pipe at real-time pace, vodLead ahead, and ends the
// pipe with io.EOF at the end of the file (or with the read error). It returns when
// ctx ends or the pipe's subscriber is closed.
func feedVOD(ctx context.Context, f VODFile, pipe *relay.Pipe, log zerolog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("vod feeder panicked")
			pipe.End(fmt.Errorf("%w: %v", ErrPanic, p))
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		anchored   bool
		anchorTS   int64
		anchorWall time.Time
		lastTS     int64
	)
	for {
		pkt, err := f.ReadPacket()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Warn().Err(err).Msg("vod read failed")
			}
			// Let the viewer take what is queued, then end its stream.
			for pipe.Len() > 0 {
				if !sleepCtx(ctx, timer, 10*time.Millisecond) {
					return
				}
			}
			pipe.End(io.EOF)
			return
		}
		for {
			now := time.Now()
			if d := pkt.Timestamp - lastTS; !anchored || d > 5000 || d < -1000 {
				anchored, anchorTS, anchorWall = true, pkt.Timestamp, now
			}
			wait := anchorWall.Add(time.Duration(pkt.Timestamp-anchorTS)*time.Millisecond - vodLead).Sub(now)
			if wait <= 0 && pipe.Full() {
				wait = 10 * time.Millisecond
			}
			if wait <= 0 {
				break
			}
			if !sleepCtx(ctx, timer, wait) {
				return
			}
		}
		if pipe.Write(pkt) != nil {
			return // the viewer left
		}
		lastTS = pkt.Timestamp
	}
}

// sleepCtx waits d on timer; false if ctx ended first.
func sleepCtx(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	timer.Reset(d)
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		timer.Stop()
		return false
	}
}
