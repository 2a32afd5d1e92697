package record

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// recording is one publish being recorded. Three goroutines, all owned by the
// Recorder (its wg): drain empties the hub subscriber into q at once, write turns q
// into the file, events reports start and end to Config.Events.
type recording struct {
	r       *Recorder         // immutable
	key     string            // immutable; "app/stream"
	app     string            // immutable
	stream  string            // immutable
	owner   string            // immutable; PublisherInfo.Owner
	append  bool              // immutable; publish type append
	started time.Time         // immutable; names the file
	sub     *relay.Subscriber // owned by drain, which closes it
	q       *queue            // drain pushes, write takes
	log     zerolog.Logger    // immutable; component=record, stream=key
	prev    *recording        // immutable; the stream's previous recording, whose file must be closed before this one opens a file

	ctx      context.Context         // ends drain; its cause says why
	cancel   context.CancelCauseFunc // called by write when it fails
	stopping atomic.Bool             // set by Recorder.Close: drain takes what the hub queued, then ends

	opened chan struct{} // closed by write when the file is open (never, if it is not)
	done   chan struct{} // closed by write when it is done and the file is closed

	mu      sync.Mutex    // guards the fields below, read by List and events
	rel     string        // the file, relative to the dir; "" until open
	size    int64         // bytes on disk
	dur     time.Duration // media duration on disk
	fileErr error         // why the recording stopped early; nil for a clean stop
}

// stop ends the recording cleanly (Recorder.Close), after what the hub has queued
// for it. Safe from any goroutine.
func (rc *recording) stop() {
	rc.stopping.Store(true)
	rc.sub.Wake()
}

// info returns the recording as List shows it; false before its file exists.
func (rc *recording) info() (Recording, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.rel == "" {
		return Recording{}, false
	}
	_, start, _, _ := parseFileName(rc.rel[len(rc.app)+1:])
	return Recording{Path: rc.rel, App: rc.app, Stream: rc.stream, Size: rc.size, StartedAt: start,
		Duration: rc.dur, Active: true}, true
}

// drain moves frames from the hub subscriber to q as they come, so the recording
// never holds up the hub or counts as a slow subscriber, until the publisher leaves
// (a clean stop), the hub or the recorder closes (clean too), or q overflows.
func (rc *recording) drain() {
	defer rc.sub.Close()
	frames := make([]relay.Frame, 0, 128)
	for {
		var err error
		frames, err = rc.sub.Read(rc.ctx, frames[:0])
		for _, f := range frames {
			switch f.Packet.Kind {
			case relay.KindStreamStart:
				continue
			case relay.KindStreamEnd:
				clear(frames)
				rc.q.end(nil) // unpublished: the recording is complete
				return
			}
			if !rc.q.push(f) {
				clear(frames)
				rc.q.end(fmt.Errorf("%w (%d MiB queued)", ErrQueueFull, rc.r.cfg.MaxQueueBytes>>20))
				return
			}
		}
		n := len(frames)
		clear(frames)
		if err == nil && rc.stopping.Load() && n < cap(frames) {
			// Recorder.Close: what the hub had queued is taken, end cleanly.
			rc.q.end(nil)
			return
		}
		if err != nil {
			cause := context.Cause(rc.ctx)
			switch {
			case errors.Is(err, relay.ErrClosed):
				rc.q.end(nil) // the relay shuts down: end the file cleanly
			case cause != nil:
				rc.q.end(cause) // the writer failed and already knows
			default:
				rc.q.end(fmt.Errorf("hub: %w", err))
			}
			return
		}
	}
}

// write opens the file at the first frame that needs it, writes every frame of q,
// flushes at least every FlushInterval and finishes the file when q ends. A failed
// write stops the recording (and the drain); the stream is not affected.
func (rc *recording) write() {
	defer close(rc.done)
	defer rc.r.finished(rc)
	defer rc.cancel(nil) // the drain is done by now, or was stopped by a failure
	interval := rc.r.cfg.FlushInterval
	ticker := time.NewTicker(max(interval/2, time.Millisecond))
	defer ticker.Stop()

	var (
		fl        *file
		meta      *relay.Packet // the publisher's first metadata, before the file exists
		held      []relay.Frame // sequence headers before the file exists
		batch     []relay.Frame
		lastFlush = time.Now()
		failure   error
	)
	flush := func() {
		if failure == nil && fl != nil {
			before := fl.size
			failure = fl.flush()
			lastFlush = time.Now()
			rc.r.bytes.Add(fl.size - before)
			rc.mu.Lock()
			rc.size, rc.dur = fl.size, fl.duration()
			rc.mu.Unlock()
		}
	}
	for {
		frames, ended, cause := rc.q.take(batch)
		if rc.r.writeHook != nil && len(frames) > 0 {
			rc.r.writeHook()
		}
		for _, f := range frames {
			if failure != nil {
				break
			}
			if fl == nil {
				// Open at the first metadata or media frame, so the publisher's
				// metadata (sent first by encoders) goes into the file's onMetaData;
				// sequence headers before it wait.
				p := f.Packet
				switch {
				case p.Kind == relay.KindMetadata:
					meta = p
				case p.SeqHeader:
					held = append(held, f)
					continue
				default:
					held = append(held, f)
				}
				fl, failure = rc.open(meta)
				if failure != nil {
					break
				}
				for _, h := range held {
					fl.writeFrame(h)
				}
				held = nil
				continue
			}
			fl.writeFrame(f)
			if len(fl.buf) >= flushBytes {
				flush()
			}
		}
		clear(frames)
		batch = frames[:0]
		if ended && failure == nil && fl == nil && len(held) > 0 {
			// Only sequence headers came: still a valid (empty) recording.
			if fl, failure = rc.open(meta); failure == nil {
				for _, h := range held {
					fl.writeFrame(h)
				}
			}
		}
		if failure == nil && fl != nil && len(fl.buf) > 0 && (ended || time.Since(lastFlush) >= interval) {
			flush()
		}
		if failure != nil {
			rc.cancel(failure) // stop the drain; the hub drops the subscriber
			rc.finish(fl, failure, true)
			return
		}
		if ended {
			rc.finish(fl, cause, false)
			return
		}
		select {
		case <-rc.q.notify:
		case <-ticker.C:
			if fl != nil && len(fl.buf) > 0 {
				flush()
			}
		}
	}
}

// open creates the recording's file, or reopens the newest one for append, after
// the stream's previous recording closed its file.
func (rc *recording) open(meta *relay.Packet) (*file, error) {
	if rc.prev != nil {
		<-rc.prev.done
	}
	dir := rc.r.cfg.Dir
	var fl *file
	if rc.append {
		var err error
		fl, err = openAppend(dir, rc.app, rc.stream)
		if err != nil {
			rc.log.Warn().AnErr("reason", err).Msg("append: no recording to continue, starting a new file")
		} else if meta != nil {
			fl.writeFrame(relay.Frame{Packet: meta})
		}
	}
	if fl == nil {
		var err error
		if fl, err = createFile(dir, rc.app, rc.stream, rc.started, meta); err != nil {
			return nil, err
		}
		rc.r.bytes.Add(fl.size) // the header and onMetaData, written already
	}
	rc.r.started.Add(1)
	rc.mu.Lock()
	rc.rel, rc.size, rc.dur = fl.rel, fl.size, fl.duration()
	rc.mu.Unlock()
	close(rc.opened)
	ev := rc.log.Info().Str("file", fl.rel)
	if fl.tsOffset > 0 {
		ev = ev.Bool("append", true).Int64("from_ms", fl.tsOffset)
	}
	ev.Msg("recording started")
	return fl, nil
}

// finish closes the file and logs how the recording ended: cause nil is a clean
// stop; otherwise the recording stopped early (failed: a write failed, and
// whatever was not written is lost; the file is still cut at a whole tag).
func (rc *recording) finish(fl *file, cause error, failed bool) {
	var rel string
	var size int64
	var dur time.Duration
	if fl != nil {
		if err := fl.close(failed); err != nil && cause == nil {
			cause = err
		}
		rel, size, dur = fl.rel, fl.size, fl.duration()
		rc.mu.Lock()
		rc.size, rc.dur = size, dur
		rc.mu.Unlock()
	}
	rc.mu.Lock()
	rc.fileErr = cause
	rc.mu.Unlock()
	if cause != nil {
		rc.r.failed.Add(1)
		rc.log.Error().Str("file", rel).AnErr("reason", cause).Int64("bytes", size).
			Dur("duration", dur).Msg("recording stopped; the stream goes on")
		return
	}
	if fl != nil {
		rc.log.Info().Str("file", rel).Int64("bytes", size).Dur("duration", dur).Msg("recording finished")
	}
}

// events reports the recording's start and end to Config.Events, one call at a
// time, never holding up the writer.
func (rc *recording) events() {
	select {
	case <-rc.opened:
	case <-rc.done:
		select {
		case <-rc.opened:
		default:
			return // no file was made
		}
	}
	ev := rc.r.cfg.Events
	in, _ := rc.info()
	ctx, cancel := context.WithTimeout(context.Background(), rc.r.cfg.EventTimeout)
	id, err := ev.RecordingStarted(ctx, in, rc.owner)
	cancel()
	if err != nil {
		rc.log.Warn().Err(err).Str("file", in.Path).Msg("recording start not logged")
		return
	}
	<-rc.done
	in, _ = rc.info()
	in.Active = false
	ctx, cancel = context.WithTimeout(context.Background(), rc.r.cfg.EventTimeout)
	defer cancel()
	if err := ev.RecordingEnded(ctx, id, in); err != nil {
		rc.log.Warn().Err(err).Str("file", in.Path).Int64("id", id).Msg("recording end not logged")
	}
}
