package main

// Sessions and stream keys (session.Store): the session flags beyond the first
// three (which live in config.go), building and closing the store, and applying
// changed session limits on a reload. Kept in its own file so config.go, run.go and
// reload.go only gain a line or two each.

import (
	"flag"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
)

// sessionConfig is the session part of Config added after --session-idle-timeout,
// --session-max-age and --max-sessions (embedded in Config, so its fields read as
// cfg.MaxAnonymousSessions and so on).
type sessionConfig struct {
	MaxAnonymousSessions int           // sessions without a login (no database connection)
	LoginFailuresPerIP   int           // failed logins per client IP per window before 429
	LoginFailuresPerUser int           // failed logins per user name per window before 429
	LoginWindow          time.Duration // the failed-login window
	SessionQueryTimeout  time.Duration // bound on one API call's queries on a user's connection
}

// addSessionFlags declares the session flags of sessionConfig on fs.
func addSessionFlags(fs *flag.FlagSet, c *sessionConfig) {
	fs.IntVar(&c.MaxAnonymousSessions, "max-anonymous-sessions", 10000, "maximum live sessions without a login (they hold no database connection)")
	fs.IntVar(&c.LoginFailuresPerIP, "login-failures-per-ip", 20, "failed logins one client IP may make per --login-window before it gets 429")
	fs.IntVar(&c.LoginFailuresPerUser, "login-failures-per-user", 5, "failed logins per user name per --login-window before that name gets 429")
	fs.DurationVar(&c.LoginWindow, "login-window", time.Minute, "window of the failed-login limits")
	fs.DurationVar(&c.SessionQueryTimeout, "session-query-timeout", 30*time.Second, "bound on one console API call's queries on the user's own database connection")
}

// validateSessions checks the session flags, those in config.go included.
func (c *Config) validateSessions() error {
	if c.SessionIdleTimeout <= 0 || c.SessionMaxAge <= 0 || c.MaxSessions <= 0 {
		return fmt.Errorf("--session-idle-timeout, --session-max-age and --max-sessions must be positive")
	}
	if c.MaxAnonymousSessions <= 0 || c.LoginFailuresPerIP <= 0 || c.LoginFailuresPerUser <= 0 ||
		c.LoginWindow <= 0 || c.SessionQueryTimeout <= 0 {
		return fmt.Errorf("--max-anonymous-sessions, --login-failures-per-ip, --login-failures-per-user, --login-window and --session-query-timeout must be positive")
	}
	return nil
}

// sessionLimits returns the session limits of cfg.
func sessionLimits(cfg Config) session.Limits {
	return session.Limits{
		IdleTimeout:          cfg.SessionIdleTimeout,
		MaxAge:               cfg.SessionMaxAge,
		MaxSessions:          cfg.MaxSessions,
		MaxAnonymous:         cfg.MaxAnonymousSessions,
		LoginFailuresPerIP:   cfg.LoginFailuresPerIP,
		LoginFailuresPerUser: cfg.LoginFailuresPerUser,
		LoginWindow:          cfg.LoginWindow,
		QueryTimeout:         cfg.SessionQueryTimeout,
	}
}

// newSessions builds the session store from the config: with --database-url, stream
// keys are checked on publish and logins are on; without, publishing is open and
// logins answer 503.
func newSessions(cfg Config, log zerolog.Logger, hub *relay.Hub) (*session.Store, error) {
	st, err := session.New(session.Config{
		DatabaseURL: cfg.DatabaseURL,
		Limits:      sessionLimits(cfg),
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

// reloadSessionLimits applies the session limits of cfg to the running store
// (session.Store.SetLimits): --session-idle-timeout, --session-max-age,
// --max-sessions, --max-anonymous-sessions, --login-failures-per-ip,
// --login-failures-per-user, --login-window and --session-query-timeout take effect
// at once, without ending a session (those past a shorter timeout end at the next
// check). --database-url needs a restart.
func reloadSessionLimits(sess *session.Store, cfg Config) error {
	if err := cfg.validateSessions(); err != nil {
		return err
	}
	return sess.SetLimits(sessionLimits(cfg))
}

// closeSessions ends every session (closing its database connection) within the
// shutdown timeout.
func closeSessions(st *session.Store, cfg Config, log zerolog.Logger) {
	closeWithin(cfg.ShutdownTimeout, st.Close, log, "sessions did not close in time")
}
