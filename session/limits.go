package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Limits are the session limits that may change while the relay runs
// (Store.SetLimits). A zero value means the documented default.
type Limits struct {
	// IdleTimeout ends a session unused for this long; default 30m.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after it began, used or not; default 12h.
	MaxAge time.Duration
	// MaxSessions caps logged-in sessions (each holds a PostgreSQL connection);
	// default 1000.
	MaxSessions int
	// MaxAnonymous caps sessions without a login (state attached by a handler
	// through a Value, no database connection); default 10000.
	MaxAnonymous int
	// LoginFailuresPerIP and LoginFailuresPerUser are how many failed logins one
	// client IP, or one user name, may make in LoginWindow before further attempts
	// get 429; defaults 20 and 5.
	LoginFailuresPerIP   int
	LoginFailuresPerUser int
	// LoginWindow is the rate-limit window for failed logins; default 1m.
	LoginWindow time.Duration
	// QueryTimeout bounds one API call's queries on a user's connection; default 30s.
	QueryTimeout time.Duration
}

// withDefaults returns l with zero fields set to their defaults, or an error naming
// the first negative field.
func (l Limits) withDefaults() (Limits, error) {
	durs := []struct {
		d    *time.Duration
		def  time.Duration
		name string
	}{
		{&l.IdleTimeout, 30 * time.Minute, "IdleTimeout"},
		{&l.MaxAge, 12 * time.Hour, "MaxAge"},
		{&l.LoginWindow, time.Minute, "LoginWindow"},
		{&l.QueryTimeout, 30 * time.Second, "QueryTimeout"},
	}
	for _, x := range durs {
		if *x.d < 0 {
			return l, fmt.Errorf("session: %s %s must not be negative", x.name, *x.d)
		}
		if *x.d == 0 {
			*x.d = x.def
		}
	}
	ints := []struct {
		n    *int
		def  int
		name string
	}{
		{&l.MaxSessions, 1000, "MaxSessions"},
		{&l.MaxAnonymous, 10000, "MaxAnonymous"},
		{&l.LoginFailuresPerIP, 20, "LoginFailuresPerIP"},
		{&l.LoginFailuresPerUser, 5, "LoginFailuresPerUser"},
	}
	for _, x := range ints {
		if *x.n < 0 {
			return l, fmt.Errorf("session: %s %d must not be negative", x.name, *x.n)
		}
		if *x.n == 0 {
			*x.n = x.def
		}
	}
	return l, nil
}

// limits returns the limits in force. They are replaced as a whole by SetLimits, so
// one call sees one consistent set.
func (s *Store) limits() *Limits { return s.lim.Load() }

// Limits returns the limits in force, defaults filled in.
func (s *Store) Limits() Limits { return *s.lim.Load() }

// SetLimits replaces the session limits while the relay runs; zero fields mean their
// defaults, a negative one is an error and changes nothing. It is safe to call
// concurrently with requests. The new limits apply to every check from now on:
// a live session is judged by the new IdleTimeout and MaxAge at its next request or
// at the next expiry sweep, which runs at once; a lower MaxSessions or MaxAnonymous
// ends no session but refuses new ones until fewer are live; a login-failure window
// that is already open keeps the end it had, while its count is compared with the new
// limits; QueryTimeout bounds the queries that start from now on.
func (s *Store) SetLimits(l Limits) error {
	l, err := l.withDefaults()
	if err != nil {
		return err
	}
	s.lim.Store(&l)
	select { // wake expire: a shorter timeout may have ended sessions already
	case s.limitsChanged <- struct{}{}:
	default:
	}
	s.log.Info().Dur("idle_timeout", l.IdleTimeout).Dur("max_age", l.MaxAge).
		Int("max_sessions", l.MaxSessions).Int("max_anonymous", l.MaxAnonymous).
		Int("login_failures_per_ip", l.LoginFailuresPerIP).Int("login_failures_per_user", l.LoginFailuresPerUser).
		Dur("login_window", l.LoginWindow).Dur("query_timeout", l.QueryTimeout).Msg("session limits set")
	return nil
}

// Stats are the session store's counters, for metrics. Counters only grow.
type Stats struct {
	// Sessions is the number of logged-in sessions (each holds a database connection).
	Sessions int `json:"sessions"`
	// Anonymous is the number of sessions without a login.
	Anonymous int `json:"anonymous"`
	// LoginsOK counts successful logins.
	LoginsOK uint64 `json:"logins_ok"`
	// LoginsFailed counts logins refused for bad credentials (401).
	LoginsFailed uint64 `json:"logins_failed"`
	// LoginsLimited counts logins refused by the failed-login rate limit (429).
	LoginsLimited uint64 `json:"logins_limited"`
	// LoginsUnavailable counts logins that failed because the database could not
	// be reached or answer, or the session cap was reached (503).
	LoginsUnavailable uint64 `json:"logins_unavailable"`
	// DatabaseErrors counts failed queries of the service role's pool (stream-key
	// checks, publish log, recordings) and failed queries on users' connections
	// that are connection or server errors, not permission or constraint errors.
	DatabaseErrors uint64 `json:"database_errors"`
}

// Stats returns the current counts and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	n, anon := len(s.sessions), s.anon
	s.mu.Unlock()
	return Stats{
		Sessions:          n - anon,
		Anonymous:         anon,
		LoginsOK:          s.loginsOK.Load(),
		LoginsFailed:      s.loginsFailed.Load(),
		LoginsLimited:     s.loginsLimited.Load(),
		LoginsUnavailable: s.loginsUnavailable.Load(),
		DatabaseErrors:    s.dbErrors.Load(),
	}
}

// isConnError reports whether err, from a query on a user's connection, is the
// database's fault rather than the user's: the connection or the server failed
// (no PostgreSQL error at all, or classes 08 connection exception, 53 insufficient
// resources, 57 operator intervention, 58 system error, XX internal error), not a
// refused permission, a constraint or a cancelled request.
func isConnError(err error) bool {
	if err == nil || errors.Is(err, errCanceledByClient) {
		return false
	}
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return true
	}
	if len(pe.Code) < 2 {
		return true
	}
	switch pe.Code[:2] {
	case "08", "53", "57", "58", "XX":
		return true
	}
	return false
}

// errQueryTimeout marks a query on a user's connection that ran past
// Limits.QueryTimeout (it was cancelled on the server; the connection stays usable).
var errQueryTimeout = errors.New("session: query timed out")

// errCanceledByClient marks a query that stopped because the client's request went
// away; it is nobody's error.
var errCanceledByClient = errors.New("session: request canceled by the client")
