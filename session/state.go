package session

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Value is a typed slot of per-session state that handlers outside this package
// attach to the session of a request: a player's preferences, a wizard's progress.
// Each NewValue is its own slot; a session holds at most one T per slot. Values live
// as long as the session, in memory only, and survive the login that replaces an
// anonymous session (the new session id takes them over).
//
// Get and Set are safe for concurrent requests of one session, and never wait for
// the session's database queries.
type Value[T any] struct {
	name string // immutable; for debugging
}

// NewValue returns a new slot; name only documents it.
func NewValue[T any](name string) *Value[T] { return &Value[T]{name: name} }

// Get returns the value attached to the session of r (logged in or anonymous), and
// whether there is one.
func (v *Value[T]) Get(s *Store, r *http.Request) (T, bool) {
	var zero T
	in := s.requestInstance(r)
	if in == nil {
		return zero, false
	}
	in.stateMu.Lock()
	defer in.stateMu.Unlock()
	x, ok := in.state[v]
	if !ok {
		return zero, false
	}
	return x.(T), true
}

// Set attaches val to the session of r. A request without a session starts an
// anonymous one: it holds no database connection, sets the mtrelay_session cookie on
// w (so call Set before writing the body), expires like any session, and counts
// against Limits.MaxAnonymous: at that cap Set returns ErrTooManySessions and
// attaches nothing.
func (v *Value[T]) Set(s *Store, w http.ResponseWriter, r *http.Request, val T) error {
	in := s.requestInstance(r)
	if in == nil {
		var err error
		if in, err = s.startAnonymous(w, r); err != nil {
			return err
		}
	}
	in.stateMu.Lock()
	defer in.stateMu.Unlock()
	if in.state == nil {
		in.state = make(map[any]any)
	}
	in.state[v] = val
	return nil
}

// Delete removes the value from the session of r, if any.
func (v *Value[T]) Delete(s *Store, r *http.Request) {
	if in := s.requestInstance(r); in != nil {
		in.stateMu.Lock()
		delete(in.state, v)
		in.stateMu.Unlock()
	}
}

// requestInstance returns the live session of r's cookie, marking it used; nil if
// there is none.
func (s *Store) requestInstance(r *http.Request) *instance {
	id, ok := cookieID(r)
	if !ok {
		return nil
	}
	return s.lookup(id)
}

// startAnonymous starts a session without a login and sets its cookie on w.
func (s *Store) startAnonymous(w http.ResponseWriter, r *http.Request) (*instance, error) {
	in, err := s.addInstance("")
	if err != nil {
		return nil, err
	}
	s.setCookie(w, r, in)
	return in, nil
}

// addInstance adds a new session of user ("" for an anonymous one) without a
// database connection, or returns the cap's error (ErrTooManySessions).
func (s *Store) addInstance(user string) (*instance, error) {
	now := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{id: newID(idBytes), csrf: newID(idBytes), user: user, created: now, lastSeen: now,
		ctx: ctx, cancel: cancel, log: zerolog.Nop()}
	s.mu.Lock()
	err := s.addLocked(in)
	s.mu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	return in, nil
}

// setCookie sets in's session cookie on w.
func (s *Store) setCookie(w http.ResponseWriter, r *http.Request, in *instance) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: in.id, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: int(s.limits().MaxAge / time.Second),
	})
}

// takeState removes and returns the session's state, for the session that replaces
// it at login.
func (in *instance) takeState() map[any]any {
	in.stateMu.Lock()
	defer in.stateMu.Unlock()
	st := in.state
	in.state = nil
	return st
}
