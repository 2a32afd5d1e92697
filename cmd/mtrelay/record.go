package main

// Recording (httptunnel/record): the --record, --record-dir and --record-max-queue
// flags, the recorder over the hub, the database log of recordings through the
// session store, and GET /api/recordings when there is no database. Kept in its own
// file so config.go and run.go only gain a line or two each.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/record"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
)

// recordConfig is the recording part of Config (embedded there, so its fields read
// as cfg.Record, cfg.RecordDir and cfg.RecordMaxQueue).
type recordConfig struct {
	Record         string // "none", "all" or comma-separated app/stream patterns
	RecordDir      string // where recordings go (also played back by VOD)
	RecordMaxQueue int    // bytes a recording may hold in memory
}

// addRecordFlags declares the recording flags on fs.
func addRecordFlags(fs *flag.FlagSet, c *recordConfig) {
	fs.StringVar(&c.Record, "record", "none", "record publishes to FLV without being asked: none, all, or comma-separated app/stream patterns with globs (live/*,event/cam?); a publish of type record or append is always recorded")
	fs.StringVar(&c.RecordDir, "record-dir", record.DefaultDir, "directory of recordings, <dir>/<app>/<stream>-YYYYMMDD-HHMMSS.flv (UTC start time); created on first use")
	fs.IntVar(&c.RecordMaxQueue, "record-max-queue", record.DefaultMaxQueueBytes, "bytes a recording may queue in memory while its disk is slow; past that the recording stops (the stream goes on)")
}

// recordPatterns splits --record into the recorder's patterns.
func (c *recordConfig) recordPatterns() []string { return strings.Split(c.Record, ",") }

// validateRecord checks the recording flags.
func (c *recordConfig) validateRecord() error {
	if c.RecordDir == "" {
		return errors.New("--record-dir must not be empty")
	}
	if c.RecordMaxQueue < 64<<10 {
		return fmt.Errorf("--record-max-queue %d: want at least 65536 bytes", c.RecordMaxQueue)
	}
	if err := record.CheckPatterns(c.recordPatterns()); err != nil {
		return fmt.Errorf("--record %q: %w", c.Record, err)
	}
	return nil
}

// newRecorder builds the recorder. With a database, each recording's start and end
// go to mtrelay.recordings through the session store's service role, from the
// recorder's own goroutines (never the media path).
func newRecorder(cfg Config, log zerolog.Logger, hub *relay.Hub, sess *session.Store) (*record.Recorder, error) {
	var events record.EventLog
	if sess.Enabled() {
		events = recordingLog{sess}
	}
	rec, err := record.New(record.Config{
		Dir:           cfg.RecordDir,
		Patterns:      cfg.recordPatterns(),
		MaxQueueBytes: cfg.RecordMaxQueue,
		Events:        events,
	}, log, hub)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	log.Info().Str("component", "record").Str("dir", cfg.RecordDir).Str("record", rec.Patterns()).
		Msg("recording publishes of type record/append, and those matching --record")
	if sess.Enabled() {
		// Rows left active by an earlier run that never finished them (kill -9): only
		// rows from before now, so recordings starting meanwhile are not touched.
		go endInterrupted(sess, time.Now(), log.With().Str("component", "record").Logger())
	}
	return rec, nil
}

// endInterrupted ends the database rows of recordings an earlier run left active.
func endInterrupted(sess *session.Store, before time.Time, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := sess.RecordingsInterrupted(ctx, before)
	switch {
	case err != nil:
		log.Warn().Err(err).Msg("could not end the recordings an earlier run left active")
	case n > 0:
		log.Info().Int64("recordings", n).Msg("ended the recordings an earlier run left active")
	}
}

// closeRecorder finishes every recording (flush, metadata, fsync) within the
// shutdown timeout. run calls it after the hub closed, so the recordings have
// everything the hub delivered. Idempotent.
func closeRecorder(rec *record.Recorder, cfg Config, log zerolog.Logger) {
	closeWithin(cfg.ShutdownTimeout, rec.Close, log, "recordings did not finish in time")
}

// reloadRecordPatterns applies a reloaded --record to publishes that start from now
// on (running recordings go on). --record-dir and --record-max-queue need a restart.
func reloadRecordPatterns(rec *record.Recorder, cfg Config) error {
	if err := cfg.validateRecord(); err != nil {
		return err
	}
	return rec.SetPatterns(cfg.recordPatterns())
}

// recordingLog writes recordings to the database through the session store.
type recordingLog struct{ st *session.Store }

// RecordingStarted inserts the recording's row; the database stamps the time.
func (l recordingLog) RecordingStarted(ctx context.Context, r record.Recording, owner string) (int64, error) {
	return l.st.RecordingStarted(ctx, session.RecordingInfo{App: r.App, Stream: r.Stream, Path: r.Path, Owner: owner})
}

// RecordingEnded completes the row with the file's final size and duration (for an
// appended file: the whole file).
func (l recordingLog) RecordingEnded(ctx context.Context, id int64, r record.Recording) error {
	return l.st.RecordingEnded(ctx, id, r.Size, r.Duration)
}

var _ record.EventLog = recordingLog{}

// recordingJSON is one entry of GET /api/recordings without a database.
type recordingJSON struct {
	Path       string `json:"path"`
	App        string `json:"app"`
	Stream     string `json:"stream"`
	Size       int64  `json:"size"`
	StartedAt  string `json:"started_at"`
	DurationMS *int64 `json:"duration_ms"` // null when the file has no duration
	Active     bool   `json:"active"`
}

// mountRecordings serves GET /api/recordings from the record directory (optionally
// ?app=&stream=), unless the session store already serves it from the database
// (it registers the route itself when a database is configured; mount sess first).
func mountRecordings(mux *http.ServeMux, rec *record.Recorder, log zerolog.Logger) {
	probe, _ := http.NewRequest(http.MethodGet, "/api/recordings", nil)
	if _, pat := mux.Handler(probe); pat == "GET /api/recordings" {
		return
	}
	mux.HandleFunc("GET /api/recordings", func(w http.ResponseWriter, r *http.Request) {
		list, err := rec.List()
		if err != nil {
			log.Warn().Str("component", "record").Err(err).Msg("list recordings")
			http.Error(w, "cannot list recordings", http.StatusInternalServerError)
			return
		}
		app, stream := r.URL.Query().Get("app"), r.URL.Query().Get("stream")
		out := make([]recordingJSON, 0, len(list))
		for _, rc := range list {
			if app != "" && rc.App != app || stream != "" && rc.Stream != stream {
				continue
			}
			j := recordingJSON{Path: rc.Path, App: rc.App, Stream: rc.Stream, Size: rc.Size,
				StartedAt: rc.StartedAt.UTC().Format("2006-01-02T15:04:05Z"), Active: rc.Active}
			if rc.Duration > 0 {
				ms := rc.Duration.Milliseconds()
				j.DurationMS = &ms
			}
			out = append(out, j)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
