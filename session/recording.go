package session

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecordingInfo describes a recording that started, for RecordingStarted.
type RecordingInfo struct {
	App, Stream string
	// Path is the file's path relative to the record directory, with slashes
	// ("live/cam-20261130-120000.flv"); /vod/{Path} serves it.
	Path string
	// Owner is the role that owns the publish (relay.PublisherInfo.Owner, the stream
	// key's owner); "" when there is none, and then only admins see the recording.
	Owner string
	// Started is when the recording began; zero means now.
	Started time.Time
}

// RecordingStarted writes a new recording to mtrelay.recordings through the service
// role (mtrelay.recording_started) and returns its id, for RecordingEnded. Without
// a database it does nothing and returns 0. The caller bounds it with ctx; the
// recorder must not wait on it (call it from a goroutine).
func (s *Store) RecordingStarted(ctx context.Context, ri RecordingInfo) (int64, error) {
	if s.pool == nil {
		return 0, nil
	}
	var started *time.Time
	if !ri.Started.IsZero() {
		started = &ri.Started
	}
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT mtrelay.recording_started($1, $2, $3, $4, $5)`,
		ri.App, ri.Stream, ri.Path, ri.Owner, started).Scan(&id)
	if err != nil {
		s.dbErrors.Add(1)
		return 0, fmt.Errorf("session: recording started %s: %w", ri.Path, err)
	}
	return id, nil
}

// RecordingEnded records the end of recording id (from RecordingStarted): its size
// in bytes and media duration. Without a database, or for id 0, it does nothing.
func (s *Store) RecordingEnded(ctx context.Context, id int64, bytes int64, d time.Duration) error {
	if s.pool == nil || id == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `SELECT mtrelay.recording_ended($1, $2, $3)`, id, bytes, d.Milliseconds()); err != nil {
		s.dbErrors.Add(1)
		return fmt.Errorf("session: recording %d ended: %w", id, err)
	}
	return nil
}

// RecordingsInterrupted ends the rows of recordings that started before before and
// never ended (their relay stopped without finishing them: kill -9, a crash) through
// the service role (mtrelay.recordings_interrupted), and returns how many. The relay
// calls it once at start with its start time. Without a database it does nothing.
func (s *Store) RecordingsInterrupted(ctx context.Context, before time.Time) (int64, error) {
	if s.pool == nil {
		return 0, nil
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT mtrelay.recordings_interrupted($1)`, before).Scan(&n); err != nil {
		s.dbErrors.Add(1)
		return 0, fmt.Errorf("session: ending interrupted recordings: %w", err)
	}
	return n, nil
}

// Recording is one row of mtrelay.recordings as GET /api/recordings shows it.
type Recording struct {
	ID     int64  `json:"id"`
	App    string `json:"app"`
	Stream string `json:"stream"`
	// Path is relative to the record directory: /vod/{path} is the file,
	// /play/vod?file={path} its player page.
	Path       string     `json:"path"`
	Owner      *string    `json:"owner"`
	StartedAt  time.Time  `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	Bytes      int64      `json:"bytes"`
	DurationMS int64      `json:"duration_ms"`
	// Active is true while the recording runs (ended_at is null). A relay that
	// died mid-recording leaves its row active until the next start of the relay
	// ends it (RecordingsInterrupted).
	Active bool `json:"active"`
}

// maxRecordings caps the rows GET /api/recordings returns (the newest).
const maxRecordings = 1000

// handleRecordings lists the newest recordings the user's own connection may read
// (row-level security: their own; admins all), optionally only those of
// ?app=&stream=.
func (s *Store) handleRecordings(w http.ResponseWriter, r *http.Request, in *instance) {
	app, stream := r.URL.Query().Get("app"), r.URL.Query().Get("stream")
	writeRows(s, w, r, in, "list recordings", func(row pgx.CollectableRow) (Recording, error) {
		var rc Recording
		err := row.Scan(&rc.ID, &rc.App, &rc.Stream, &rc.Path, &rc.Owner, &rc.StartedAt, &rc.EndedAt, &rc.Bytes, &rc.DurationMS)
		rc.Active = rc.EndedAt == nil
		return rc, err
	}, `SELECT id, app, stream, path, owner, started_at, ended_at, bytes, duration_ms
FROM mtrelay.recordings
WHERE ($1 = '' OR app = $1) AND ($2 = '' OR stream = $2)
ORDER BY id DESC LIMIT $3`, app, stream, maxRecordings)
}
