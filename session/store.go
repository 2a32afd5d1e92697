package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
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
	// ErrSessionEnded is returned for a query on a session that expired or logged out.
	ErrSessionEnded = errors.New("session: session ended")
)

// Config tunes a Store. A zero value means the documented default.
type Config struct {
	// DatabaseURL is the service role's connection URL (host, port and database are
	// also used for users' logins). Empty means no database: open publishing, and
	// logins answer 503.
	DatabaseURL string
	// IdleTimeout ends a session unused for this long; default 30m.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after login, used or not; default 12h.
	MaxAge time.Duration
	// MaxSessions caps live sessions (each holds a PostgreSQL connection); default 1000.
	MaxSessions int
	// LoginFailuresPerIP and LoginFailuresPerUser are how many failed logins one
	// client IP, or one user name, may make in LoginWindow before further attempts
	// get 429; defaults 20 and 5.
	LoginFailuresPerIP   int
	LoginFailuresPerUser int
	// LoginWindow is the rate-limit window for failed logins; default 1m.
	LoginWindow time.Duration
	// ConnectTimeout bounds a login's connection attempt; default 5s.
	ConnectTimeout time.Duration
	// QueryTimeout bounds one API call's queries on a user's connection; default 30s.
	QueryTimeout time.Duration
	// ServiceConns caps the service role's pool (stream-key checks); default 4.
	ServiceConns int32
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration, name string) error {
		if *d < 0 {
			return fmt.Errorf("session: %s %s must not be negative", name, *d)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	for _, e := range []error{
		def(&c.IdleTimeout, 30*time.Minute, "IdleTimeout"),
		def(&c.MaxAge, 12*time.Hour, "MaxAge"),
		def(&c.LoginWindow, time.Minute, "LoginWindow"),
		def(&c.ConnectTimeout, 5*time.Second, "ConnectTimeout"),
		def(&c.QueryTimeout, 30*time.Second, "QueryTimeout"),
	} {
		if e != nil {
			return e
		}
	}
	defInt := func(d *int, v int, name string) error {
		if *d < 0 {
			return fmt.Errorf("session: %s %d must not be negative", name, *d)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	for _, e := range []error{
		defInt(&c.MaxSessions, 1000, "MaxSessions"),
		defInt(&c.LoginFailuresPerIP, 20, "LoginFailuresPerIP"),
		defInt(&c.LoginFailuresPerUser, 5, "LoginFailuresPerUser"),
	} {
		if e != nil {
			return e
		}
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
	cfg     Config          // immutable after New
	log     zerolog.Logger  // immutable; component=session
	hub     *relay.Hub      // immutable; may be nil (kick then answers 404)
	connCfg *pgx.ConnConfig // immutable; parsed DatabaseURL, nil without a database
	pool    *pgxpool.Pool   // immutable; the service role's pool, nil without a database

	mu       sync.Mutex
	sessions map[string]*instance // guarded by mu; by cookie id
	fails    map[string]*failures // guarded by mu; "ip:"+addr or "user:"+name
	closed   bool                 // guarded by mu

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
	s := &Store{
		cfg:      cfg,
		log:      log.With().Str("component", "session").Logger(),
		hub:      hub,
		sessions: make(map[string]*instance),
		fails:    make(map[string]*failures),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
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

// Sessions returns the number of live sessions.
func (s *Store) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// expire ends sessions past their idle or absolute timeout and forgets old login
// failures, until Close.
func (s *Store) expire() {
	defer close(s.done)
	tick := min(s.cfg.IdleTimeout, s.cfg.MaxAge) / 4
	tick = max(min(tick, 30*time.Second), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			var ended []*instance
			s.mu.Lock()
			for id, in := range s.sessions {
				if in.expired(now, s.cfg) {
					delete(s.sessions, id)
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
	}
}

// closeAsync closes in's connection in the background; Close waits for it.
func (s *Store) closeAsync(in *instance) {
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
	if in.expired(now, s.cfg) {
		delete(s.sessions, id)
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
	delete(s.sessions, id)
	return in
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
			delete(s.sessions, id)
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
	if in == nil {
		return Caller{}
	}
	return Caller{User: in.user, Admin: in.admin, CSRFOK: in.csrfOK(r.Header.Get("X-CSRF-Token")), Session: true}
}
