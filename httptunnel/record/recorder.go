package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// Protocol is the relay.SubscribeOptions.Protocol of a recording's hub subscriber.
// It counts as no viewer (SubscribeOptions.Viewers returns 0).
const Protocol = "record"

// Errors that stop a recording (logged as its reason).
var (
	// ErrQueueFull means the recording's queue reached Config.MaxQueueBytes: the
	// disk does not keep up with the stream.
	ErrQueueFull = errors.New("record: queue full: the disk does not keep up")
)

// Hub is what the recorder needs of *relay.Hub.
type Hub interface {
	Subscribe(key string, opts relay.SubscribeOptions) (*relay.Subscriber, error)
	OnPublish(fn relay.PublishFunc) (remove func())
}

// EventLog is told when a recording's file is created and when it is finished, for
// a database log. The recorder calls it from a goroutine of its own, never from the
// media path, with a context that ends after Config.EventTimeout; errors are logged.
type EventLog interface {
	// RecordingStarted returns an id that RecordingEnded gets back. owner is the
	// publisher's relay.PublisherInfo.Owner.
	RecordingStarted(ctx context.Context, r Recording, owner string) (id int64, err error)
	// RecordingEnded reports the file's final size and duration. It is called only
	// after RecordingStarted succeeded.
	RecordingEnded(ctx context.Context, id int64, r Recording) error
}

// Config tunes a Recorder. A zero value means the documented default.
type Config struct {
	// Dir is where recordings go, as Dir/app/stream-YYYYMMDD-HHMMSS.flv (the UTC
	// start time). It is created on first use. Default "recordings".
	Dir string
	// Patterns says which publishes are recorded without asking: nil or {"none"}
	// only publishes of type record or append; {"all"} every publish; otherwise
	// app/stream patterns with path.Match globs ({"live/*", "event/cam?"}).
	Patterns []string
	// MaxQueueBytes bounds the media a recording may hold in memory while its file
	// is written; a recording whose disk does not keep up stops there (ErrQueueFull)
	// and the stream goes on. Default 8 MiB.
	MaxQueueBytes int
	// FlushInterval is the longest a tag stays in memory before it is written to
	// the file (a crash loses at most this much). Default 1s.
	FlushInterval time.Duration
	// Events, if set, is told about each recording's start and end.
	Events EventLog
	// EventTimeout bounds each Events call. Default 5s.
	EventTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultDir           = "recordings"
	DefaultMaxQueueBytes = 8 << 20
	DefaultFlushInterval = time.Second
	DefaultEventTimeout  = 5 * time.Second
)

// flushBytes is how much the writer buffers at most before writing.
const flushBytes = 256 << 10

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.MaxQueueBytes < 0:
		return c, fmt.Errorf("record: Config.MaxQueueBytes is negative (%d)", c.MaxQueueBytes)
	case c.FlushInterval < 0:
		return c, fmt.Errorf("record: Config.FlushInterval is negative (%v)", c.FlushInterval)
	case c.EventTimeout < 0:
		return c, fmt.Errorf("record: Config.EventTimeout is negative (%v)", c.EventTimeout)
	}
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.EventTimeout == 0 {
		c.EventTimeout = DefaultEventTimeout
	}
	return c, nil
}

// Recording describes one recording file, as List returns it.
type Recording struct {
	Path      string        // relative to Config.Dir, slash-separated: "live/foo-20261130-120000.flv"
	App       string        // "live"
	Stream    string        // "foo"
	Size      int64         // bytes on disk
	StartedAt time.Time     // from the file name (UTC, to the second)
	Duration  time.Duration // media duration from the file's metadata; 0 if unknown
	Active    bool          // being written now
}

// Stats counts what the recorder did, for metrics.
type Stats struct {
	Active       int   // recordings being written
	Started      int64 // recordings whose file was created or reopened, total
	Failed       int64 // recordings stopped by an error (disk full, write error, queue full), total
	BytesWritten int64 // bytes written to recording files, total
}

// Recorder records live streams to FLV files: every publish that asks for it
// (type record or append) or that matches its patterns. Safe for concurrent use.
type Recorder struct {
	cfg      Config         // immutable after New
	log      zerolog.Logger // immutable after New; component=record
	hub      Hub            // immutable after New
	unlisten func()         // removes the OnPublish listener; called by Close

	patterns atomic.Pointer[patterns] // replaced by SetPatterns

	wg     sync.WaitGroup          // every recording goroutine
	mu     sync.Mutex              // guards closed, active, latest
	closed bool                    // guarded by mu
	active map[*recording]struct{} // guarded by mu; recordings whose writer runs
	latest map[string]*recording   // guarded by mu; the newest recording of each stream key

	started, failed, bytes atomic.Int64 // for Stats

	writeHook func() // tests: called by each writer before it writes a batch; immutable after New
}

// New returns a Recorder that records publishes of hub. It fails if a Config field
// is negative or a pattern is malformed. The directory is created on first use.
func New(cfg Config, log zerolog.Logger, hub Hub) (*Recorder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, errors.New("record: nil Hub")
	}
	p, err := parsePatterns(cfg.Patterns)
	if err != nil {
		return nil, err
	}
	r := &Recorder{
		cfg:    cfg,
		log:    log.With().Str("component", "record").Logger(),
		hub:    hub,
		active: make(map[*recording]struct{}),
		latest: make(map[string]*recording),
	}
	r.patterns.Store(p)
	r.unlisten = hub.OnPublish(r.onPublish)
	return r, nil
}

// Dir returns the directory recordings are written to.
func (r *Recorder) Dir() string { return r.cfg.Dir }

// Patterns returns the current patterns as --record writes them ("none", "all" or
// a comma-separated list).
func (r *Recorder) Patterns() string { return r.patterns.Load().String() }

// SetPatterns replaces the patterns (see Config.Patterns) for publishes that start
// from now on; running recordings go on. On error nothing changes. Safe for
// concurrent use (live reload).
func (r *Recorder) SetPatterns(list []string) error {
	p, err := parsePatterns(list)
	if err != nil {
		return err
	}
	r.patterns.Store(p)
	return nil
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	n := len(r.active)
	r.mu.Unlock()
	return Stats{Active: n, Started: r.started.Load(), Failed: r.failed.Load(), BytesWritten: r.bytes.Load()}
}

// onPublish is the hub's publish listener: it runs on the publisher's goroutine
// before its first packet, so the recording gets the publish from its start. It
// only subscribes and starts the recording's goroutines; files are opened by them.
func (r *Recorder) onPublish(key string, info relay.PublisherInfo) {
	mode := strings.ToLower(info.Mode)
	if mode != "record" && mode != "append" && !r.patterns.Load().match(key) {
		return
	}
	app, stream, ok := strings.Cut(key, "/")
	if !ok {
		return
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return
	}
	sub, err := r.hub.Subscribe(key, relay.SubscribeOptions{
		Protocol: Protocol,
		Remote:   info.Remote,
		Viewers:  func() int { return 0 },
	})
	if err != nil {
		r.log.Warn().Str("stream", key).Err(err).Msg("recording not started")
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	rc := &recording{
		r:       r,
		key:     key,
		app:     app,
		stream:  stream,
		owner:   info.Owner,
		append:  mode == "append",
		started: time.Now(),
		sub:     sub,
		q:       newQueue(r.cfg.MaxQueueBytes),
		ctx:     ctx,
		cancel:  cancel,
		opened:  make(chan struct{}),
		done:    make(chan struct{}),
		log:     r.log.With().Str("stream", key).Logger(),
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel(nil)
		sub.Close()
		return
	}
	rc.prev = r.latest[key]
	r.latest[key] = rc
	r.active[rc] = struct{}{}
	r.wg.Go(rc.drain)
	r.wg.Go(rc.write)
	if r.cfg.Events != nil {
		r.wg.Go(rc.events)
	}
	r.mu.Unlock()
	rc.log.Debug().Str("mode", info.Mode).Msg("recording requested")
}

// finished forgets rc once its writer is done.
func (r *Recorder) finished(rc *recording) {
	r.mu.Lock()
	delete(r.active, rc)
	if r.latest[rc.key] == rc {
		delete(r.latest, rc.key)
	}
	r.mu.Unlock()
}

// Close stops listening for publishes, ends every recording cleanly (files are
// flushed, their metadata fixed, synced and closed) and waits for the recording
// goroutines, the Events calls included, until ctx is done. Call it after the hub
// stopped delivering (Hub.Close), so that recordings have everything. Idempotent.
func (r *Recorder) Close(ctx context.Context) error {
	r.unlisten()
	r.mu.Lock()
	r.closed = true
	list := make([]*recording, 0, len(r.active))
	for rc := range r.active {
		list = append(list, rc)
	}
	r.mu.Unlock()
	for _, rc := range list {
		rc.stop()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("record close: %w", context.Cause(ctx))
	}
}

// List returns every recording under Dir (files app/stream-YYYYMMDD-HHMMSS.flv;
// symlinks and other names are skipped), newest first. Size and Duration of active
// recordings are what has been written so far; of the others, from the file (the
// duration from its metadata, kept up to date at every flush, so a file cut by a
// crash has one too).
func (r *Recorder) List() ([]Recording, error) {
	r.mu.Lock()
	live := make(map[string]Recording, len(r.active))
	for rc := range r.active {
		if in, ok := rc.info(); ok {
			live[in.Path] = in
		}
	}
	r.mu.Unlock()

	apps, err := os.ReadDir(r.cfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return []Recording{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("record list: %w", err)
	}
	list := []Recording{}
	for _, a := range apps {
		if !a.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(r.cfg.Dir, a.Name()))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			stream, start, _, ok := parseFileName(e.Name())
			if !ok {
				continue
			}
			rel := path.Join(a.Name(), e.Name())
			if in, ok := live[rel]; ok {
				list = append(list, in)
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			list = append(list, Recording{
				Path:      rel,
				App:       a.Name(),
				Stream:    stream,
				Size:      fi.Size(),
				StartedAt: start,
				Duration:  readDuration(filepath.Join(r.cfg.Dir, a.Name(), e.Name())),
			})
		}
	}
	slices.SortFunc(list, func(a, b Recording) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return list, nil
}
