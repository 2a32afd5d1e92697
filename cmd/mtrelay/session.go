package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
)

// newSessions builds the session store from the config: with --database-url, stream
// keys are checked on publish and logins are on; without, publishing is open and
// logins answer 503.
func newSessions(cfg Config, log zerolog.Logger, hub *relay.Hub) (*session.Store, error) {
	st, err := session.New(session.Config{
		DatabaseURL: cfg.DatabaseURL,
		IdleTimeout: cfg.SessionIdleTimeout,
		MaxAge:      cfg.SessionMaxAge,
		MaxSessions: cfg.MaxSessions,
	}, log, hub)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if st.Enabled() {
		log.Info().Msg("database configured: publishing needs a stream key (?key=K), console logins on")
	} else {
		log.Info().Msg("no --database-url: open publishing, logins disabled")
	}
	return st, nil
}

// closeSessions ends every session (closing its database connection) within the
// shutdown timeout.
func closeSessions(st *session.Store, cfg Config, log zerolog.Logger) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), cfg.ShutdownTimeout,
		errors.New("shutdown timeout"))
	defer cancel()
	if err := st.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("sessions did not close in time")
	}
}
