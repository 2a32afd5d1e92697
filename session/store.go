package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// CookieName is the session cookie.
const CookieName = "mtrelay_session"

// Errors of the session package.
var (
	// ErrClosed is returned after Store.Close.
	ErrClosed = errors.New("session: closed")
	// ErrNoDatabase is returned by logins when no database URL is configured.
	ErrNoDatabase = errors.New("session: logins disabled: no database configured")
	// ErrSessionEnded is returned for a query on a session that expired or logged
	// out, or whose database connection broke.
	ErrSessionEnded = errors.New("session: session ended")
	// ErrTooManySessions refuses a new session at MaxSessions (logins) or
	// MaxAnonymous (anonymous sessions).
	ErrTooManySessions = errors.New("session: too many sessions")
)

// Config tunes a Store. A zero value means the documented default.
type Config struct {
	// DatabaseURL is the service role's connection URL (host, port and database are
	// also used for users' logins). Empty means no database: open publishing, and
	// logins answer 503.
	DatabaseURL string
	// Limits are the expiry, caps, login rate limits and query timeout, which
	// SetLimits can change later (cfg.IdleTimeout and so on); each field documents
	// its default.
	Limits
	// ConnectTimeout bounds a login's connection attempt; default 5s.
	ConnectTimeout time.Duration
	// ServiceConns caps the service role's pool (stream-key checks); default 4.
	ServiceConns int32
}

// setDefaults fills in the fields that are not Limits (those are Limits.withDefaults').
func (c *Config) setDefaults() error {
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("session: ConnectTimeout %s must not be negative", c.ConnectTimeout)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ServiceConns < 0 {
		return fmt.Errorf("session: ServiceConns %d must not be negative", c.ServiceConns)
	}
	if c.ServiceConns == 0 {
		c.ServiceConns = 4
	}
	return nil
}

// Store is the set of live sessions, the service connection pool and the HTTP
// handlers. Make one with New, mount it with Mount, end it with Close.
type Store struct {
	cfg     Config          // immutable after New; its limits are only the initial ones (see lim)
	log     zerolog.Logger  // immutable; component=session
	hub     *relay.Hub      // immutable; may be nil (kick then answers 404)
	connCfg *pgx.ConnConfig // immutable; parsed DatabaseURL, nil without a database
	pool    *pgxpool.Pool   // immutable; the service role's pool, nil without a database

	lim           atomic.Pointer[Limits] // never nil after New; replaced whole by SetLimits
	limitsChanged chan struct{}          // capacity 1; SetLimits wakes expire

	mu       sync.Mutex
	sessions map[string]*instance // guarded by mu; by cookie id, logged-in and anonymous
	anon     int                  // guarded by mu; how many of sessions have no login
	fails    map[string]*failures // guarded by mu; "ip:"+addr or "user:"+name
	closed   bool                 // guarded by mu

	// Counters for Stats.
	loginsOK, loginsFailed, loginsLimited, loginsUnavailable, dbErrors atomic.Uint64

	stop    chan struct{}  // closed by Close; stops expire
	done    chan struct{}  // closed by expire when it returns
	closers sync.WaitGroup // connection closes started by expiry and logout
	// ends are the end_publish calls started by a publish's OnEnd; Add only with mu
	// held and closed false, so that none starts after Close began waiting.
	ends sync.WaitGroup
	// bg bounds background queries (ends); cancelled when Close gives up.
	bg       context.Context
	bgCancel context.CancelFunc
	once     sync.Once
}

// failures counts failed logins of one IP or user name in the current window.
type failures struct {
	n     int
	reset time.Time // when the window ends
}

// New validates cfg and returns a Store. It does not connect: a database that is down
// at start-up makes publishes and logins fail until it is back. hub is used by the
// kick handler.
func New(cfg Config, log zerolog.Logger, hub *relay.Hub) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	lim, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:           cfg,
		log:           log.With().Str("component", "session").Logger(),
		hub:           hub,
		limitsChanged: make(chan struct{}, 1),
		sessions:      make(map[string]*instance),
		fails:         make(map[string]*failures),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	s.lim.Store(&lim)
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	if cfg.DatabaseURL != "" {
		cc, err := pgx.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			// The error text may quote the URL, password included: do not wrap it.
			return nil, errors.New("session: DatabaseURL: not a valid PostgreSQL connection URL")
		}
		s.connCfg = cc
		pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, errors.New("session: DatabaseURL: not a valid PostgreSQL connection URL")
		}
		pc.MaxConns = cfg.ServiceConns
		pc.MinConns = 0
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
		pc.ConnConfig.RuntimeParams["application_name"] = "mtrelay"
		if s.pool, err = pgxpool.NewWithConfig(context.Background(), pc); err != nil {
			return nil, fmt.Errorf("session: service pool: %w", err)
		}
	}
	go s.expire() // waited for by Close through s.done
	return s, nil
}

// Enabled reports whether a database is configured (logins and key checks on).
func (s *Store) Enabled() bool { return s.connCfg != nil }

// Sessions returns the number of live logged-in sessions.
func (s *Store) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions) - s.anon
}

// expireTick is how often expire sweeps under lim: a quarter of the shorter timeout,
// between 10 ms and 30 s.
func expireTick(lim *Limits) time.Duration {
	tick := min(lim.IdleTimeout, lim.MaxAge) / 4
	return max(min(tick, 30*time.Second), 10*time.Millisecond)
}

// expire ends sessions past their idle or absolute timeout and forgets old login
// failures, until Close. SetLimits wakes it for a sweep under the new limits.
func (s *Store) expire() {
	defer close(s.done)
	tick := expireTick(s.limits())
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-s.stop:
			return
		case now = <-t.C:
		case <-s.limitsChanged:
			now = time.Now()
			if nt := expireTick(s.limits()); nt != tick {
				tick = nt
				t.Reset(tick)
			}
		}
		s.sweep(now)
	}
}

// sweep ends the sessions expired at now under the limits in force and forgets
// login-failure windows that are over.
func (s *Store) sweep(now time.Time) {
	lim := s.limits()
	var ended []*instance
	s.mu.Lock()
	for id, in := range s.sessions {
		if in.expired(now, lim) {
			s.deleteLocked(id, in)
			ended = append(ended, in)
		}
	}
	for k, f := range s.fails {
		if !now.Before(f.reset) {
			delete(s.fails, k)
		}
	}
	s.mu.Unlock()
	for _, in := range ended {
		in.log.Info().Msg("session expired")
		s.closeAsync(in)
	}
}

// closeAsync closes in's connection in the background; Close waits for it.
func (s *Store) closeAsync(in *instance) {
	if in.anonymous() {
		in.cancel() // nothing to close
		return
	}
	s.closers.Go(func() { in.close(s.cfg.ConnectTimeout) })
}

// lookup returns the live session with cookie id and marks it used; nil if there is
// none or it expired.
func (s *Store) lookup(id string) *instance {
	now := time.Now()
	s.mu.Lock()
	in := s.sessions[id]
	if in == nil {
		s.mu.Unlock()
		return nil
	}
	if in.expired(now, s.limits()) {
		s.deleteLocked(id, in)
		s.mu.Unlock()
		in.log.Info().Msg("session expired")
		s.closeAsync(in)
		return nil
	}
	in.lastSeen = now
	s.mu.Unlock()
	return in
}

// remove ends the session with cookie id, if any, and returns it (not yet closed).
func (s *Store) remove(id string) *instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.sessions[id]
	if in != nil {
		s.deleteLocked(id, in)
	}
	return in
}

// deleteLocked removes in, the session with cookie id, from the map. s.mu is held.
func (s *Store) deleteLocked(id string, in *instance) {
	delete(s.sessions, id)
	if in.anonymous() {
		s.anon--
	}
}

// addLocked adds in to the map if the cap of its kind allows; s.mu is held.
func (s *Store) addLocked(in *instance) error {
	lim := s.limits()
	switch {
	case s.closed:
		return ErrClosed
	case in.anonymous() && s.anon >= lim.MaxAnonymous:
		return ErrTooManySessions
	case !in.anonymous() && len(s.sessions)-s.anon >= lim.MaxSessions:
		return ErrTooManySessions
	}
	s.sessions[in.id] = in
	if in.anonymous() {
		s.anon++
	}
	return nil
}

// Close ends every session and closes its connection, and the service pool, within
// ctx's deadline. Logins and key checks fail afterwards. Idempotent.
func (s *Store) Close(ctx context.Context) error {
	var all []*instance
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		for id, in := range s.sessions {
			all = append(all, in)
			s.deleteLocked(id, in)
		}
		s.mu.Unlock()
		close(s.stop)
	})
	<-s.done
	timeout := s.cfg.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	for _, in := range all {
		s.closers.Go(func() { in.close(timeout) })
	}
	waited := make(chan struct{})
	go func() { // ends when the closers and ends do, each bounded by a timeout
		s.closers.Wait()
		s.ends.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		s.bgCancel()
		return fmt.Errorf("session: close: %w", context.Cause(ctx))
	}
	s.bgCancel()
	if s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// Caller describes the logged-in user behind a request, for handlers outside this
// package that need the same checks as its own write calls.
type Caller struct {
	User    string
	Admin   bool // member of mtrelay_admin at login
	CSRFOK  bool // the request carries the session's X-CSRF-Token
	Session bool // the request has a live session at all
}

// Caller returns who made r: its session's user and role, and whether r carries the
// session's CSRF token. A request without a live session has Session false.
func (s *Store) Caller(r *http.Request) Caller {
	id, ok := cookieID(r)
	if !ok {
		return Caller{}
	}
	in := s.lookup(id)
	if in == nil || in.anonymous() {
		return Caller{}
	}
	return Caller{User: in.user, Admin: in.admin, CSRFOK: in.csrfOK(r.Header.Get("X-CSRF-Token")), Session: true}
}
