package session

import (
	"context"
	"net/url"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

var _ relay.AccessController = (*Store)(nil)

// Authorize implements relay.AccessController. Without a database everything is
// allowed. With one, connects (relay.ActionConnect) and plays are allowed and a
// publish needs ?key=K, an active stream
// key for that app/stream, checked by mtrelay.check_stream_key through the service
// role; the key's owner becomes the decision's Owner (who may kick it) and the
// publish is written to mtrelay.publish_log. When the database cannot answer, the
// publish is refused (running streams are not affected: they were checked when
// they started).
func (s *Store) Authorize(ctx context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
	if s.pool == nil || req.Action != relay.ActionPublish {
		return relay.AccessDecision{Allow: true}, nil
	}
	log := s.log.With().Str("stream", req.Key).Str("remote", req.Remote).Logger()
	q, _ := url.ParseQuery(req.Query)
	key := q.Get("key")
	if key == "" {
		log.Warn().Msg("publish refused: no stream key (want ?key=K)")
		return relay.AccessDecision{Reason: "stream key required (?key=K)"}, nil
	}
	var owner *string
	var logID *int64
	err := s.pool.QueryRow(ctx, `SELECT o, CASE WHEN o IS NOT NULL THEN mtrelay.log_publish($1, o, $3) END
FROM mtrelay.check_stream_key($1, $2) AS o`, req.Key, key, req.Remote).Scan(&owner, &logID)
	if err != nil {
		s.dbErrors.Add(1)
		log.Error().Err(err).Msg("publish refused: stream key check failed (database unavailable?); running streams are not affected")
		return relay.AccessDecision{Reason: "stream key check unavailable"}, nil
	}
	if owner == nil {
		log.Warn().Msg("publish refused: invalid stream key")
		return relay.AccessDecision{Reason: "invalid stream key"}, nil
	}
	log = log.With().Str("user", *owner).Logger()
	log.Info().Msg("publish allowed by stream key")
	d := relay.AccessDecision{Allow: true, Owner: *owner}
	if logID != nil {
		d.OnEnd = s.endPublish(*logID, log)
	}
	return d, nil
}

// endPublish returns the relay.AccessDecision.OnEnd of the publish logged as logID:
// it records the end (mtrelay.end_publish) through the service pool in a goroutine
// the Store owns, so the relay never waits on the database. Close waits for it.
func (s *Store) endPublish(logID int64, log zerolog.Logger) func() {
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			log.Warn().Int64("publish_id", logID).Msg("publish end not recorded: session store closed")
			return
		}
		s.ends.Go(func() {
			ctx, cancel := context.WithTimeout(s.bg, s.limits().QueryTimeout)
			defer cancel()
			if _, err := s.pool.Exec(ctx, `SELECT mtrelay.end_publish($1)`, logID); err != nil {
				s.dbErrors.Add(1)
				log.Warn().Err(err).Int64("publish_id", logID).Msg("publish end not recorded")
				return
			}
			log.Debug().Int64("publish_id", logID).Msg("publish end recorded")
		})
	}
}
