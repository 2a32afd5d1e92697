package session

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// instance is one browser session: the in-memory application instance its cookie
// finds. A logged-in instance holds its user's own database connection; an
// anonymous one (user "", conn nil) holds only the state handlers attached to it
// through a Value, so it is cheap, and capped by Limits.MaxAnonymous.
type instance struct {
	id      string         // immutable; the cookie value (256 bits)
	csrf    string         // immutable; required as X-CSRF-Token on write calls
	user    string         // immutable; the PostgreSQL role; "" for an anonymous session
	admin   bool           // immutable; member of mtrelay_admin at login
	created time.Time      // immutable
	log     zerolog.Logger // immutable; user=role

	lastSeen time.Time // guarded by Store.mu

	// ctx is cancelled when the session ends, which interrupts a running query so
	// that close can take mu.
	ctx    context.Context    // immutable
	cancel context.CancelFunc // immutable

	mu   sync.Mutex // serializes every use of conn: one query at a time per session
	conn *pgx.Conn  // guarded by mu; nil once closed, and for an anonymous session

	// stateMu guards state only, never held during I/O, so that a slow query of the
	// session does not hold up its handlers' state.
	stateMu sync.Mutex
	state   map[any]any // guarded by stateMu; by *Value[T], values of type T
}

// anonymous reports whether the session has no login.
func (in *instance) anonymous() bool { return in.user == "" }

// csrfOK reports whether header, an X-CSRF-Token value, is this session's token. A
// malformed value is refused before the constant-time comparison.
func (in *instance) csrfOK(header string) bool {
	if _, ok := parseID(header); !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(header), []byte(in.csrf)) == 1
}

func (in *instance) expired(now time.Time, lim *Limits) bool {
	return now.Sub(in.lastSeen) >= lim.IdleTimeout || now.Sub(in.created) >= lim.MaxAge
}

// do runs fn on the session's connection with ctx bounded by timeout and by the
// session's life. Calls of one session run one at a time; other sessions never wait.
func (in *instance) do(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(in.ctx, cancel)
	defer stop()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn == nil || in.conn.IsClosed() {
		return ErrSessionEnded
	}
	if err := fn(ctx, in.conn); err != nil {
		if in.ctx.Err() != nil || in.conn.IsClosed() {
			// Ended meanwhile, or the connection broke (pgx closes it when a query
			// is interrupted by a deadline): the session cannot go on.
			return fmt.Errorf("%w: %w", ErrSessionEnded, err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", errQueryTimeout, err)
		}
		if errors.Is(ctx.Err(), context.Canceled) { // the request went away; not a timeout
			return fmt.Errorf("%w: %w", errCanceledByClient, err)
		}
		return err
	}
	return nil
}

// close ends the session: it interrupts a running query, then closes the connection
// (the backend leaves pg_stat_activity). Idempotent.
func (in *instance) close(timeout time.Duration) {
	in.cancel()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := in.conn.Close(ctx); err != nil {
		in.log.Debug().Err(err).Msg("closing the session's connection")
	}
	in.conn = nil
	in.log.Debug().Msg("session connection closed")
}
