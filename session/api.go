package session

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/mtrelay/mtrelay/relay"
)

// maxBody caps JSON and form bodies of the API.
const maxBody = 64 << 10

// Mount registers the session API on mux:
//
//	POST   /api/login                          {"username","password"} → {"user","csrf","admin"}
//	POST   /api/logout                         → 204
//	GET    /api/session                        → {"user","csrf","admin"} or 401
//	GET    /api/keys                           → [{"id","app","stream","key","owner","created_at"}]
//	POST   /api/keys                           {"app","stream"} → 201 key
//	DELETE /api/keys/{id}                      → 204
//	POST   /api/keys/{id}/revoke (or PATCH)    → 204 (the key stays, inactive)
//	GET    /api/publishes                      → [{"id","app_stream","owner","remote","started_at","ended_at","duration_seconds"}]
//	GET    /api/live                           → live streams from the hub, with "mine"
//	POST   /api/streams/{app}/{stream}/kick    → 204, 403, 404
//	GET    /api/recordings                     → [{"id","app","stream","path",...,"active"}] (only with a database)
//	GET    /{$}                                → the console page (only with a database)
//	GET    /console                            → the console page; with a database a redirect to /
//
// Write calls other than login need header X-CSRF-Token equal to the session's
// token (403 otherwise); calls without a valid session get 401.
//
// With a database, the console takes over GET / (exactly "/": a more specific
// pattern than any catch-all "/" the caller mounts, so it wins on the same mux), and
// GET /api/recordings is served from mtrelay.recordings through the user's own
// connection. Without one, neither is registered: the caller keeps its own / (the
// public stream list) and /api/recordings (the recorder's file list).
func (s *Store) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/login", s.handleLogin)
	mux.HandleFunc("POST /api/logout", s.handleLogout)
	mux.HandleFunc("GET /api/session", s.withSession(false, s.handleSession))
	mux.HandleFunc("GET /api/keys", s.withSession(false, s.handleListKeys))
	mux.HandleFunc("POST /api/keys", s.withSession(true, s.handleCreateKey))
	mux.HandleFunc("DELETE /api/keys/{id}", s.withSession(true, s.handleDeleteKey))
	mux.HandleFunc("POST /api/keys/{id}/revoke", s.withSession(true, s.handleRevokeKey))
	mux.HandleFunc("PATCH /api/keys/{id}/revoke", s.withSession(true, s.handleRevokeKey))
	mux.HandleFunc("GET /api/publishes", s.withSession(false, s.handlePublishes))
	mux.HandleFunc("GET /api/live", s.withSession(false, s.handleLive))
	if s.Enabled() {
		mux.HandleFunc("GET /api/recordings", s.withSession(false, s.handleRecordings))
	}
	s.mountConsole(mux)
	mux.HandleFunc("POST /api/streams/{app}/{stream}/kick", s.withSession(true, s.handleKick))
}

type sessionBody struct {
	User  string `json:"user"`
	CSRF  string `json:"csrf"`
	Admin bool   `json:"admin"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// withSession finds the request's session (401 without one) and, for write calls,
// checks the CSRF header (403).
func (s *Store) withSession(write bool, h func(http.ResponseWriter, *http.Request, *instance)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in *instance
		if id, ok := cookieID(r); ok {
			in = s.lookup(id)
		}
		if in == nil || in.anonymous() {
			writeError(w, http.StatusUnauthorized, "not logged in")
			return
		}
		if write && !in.csrfOK(r.Header.Get("X-CSRF-Token")) {
			writeError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token header")
			return
		}
		h(w, r, in)
	}
}

// decodeBody reads a JSON object or an HTML form into fields named by the form keys.
func decodeBody(w http.ResponseWriter, r *http.Request, keys ...string) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	out := make(map[string]string, len(keys))
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return nil, err
		}
		for _, k := range keys {
			if v, ok := m[k].(string); ok {
				out[k] = v
			}
		}
		return out, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		out[k] = r.PostForm.Get(k)
	}
	return out, nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited reports whether ip or user made too many failed logins; then it returns
// how long until the window ends.
func (s *Store) limited(ip, user string, now time.Time) (time.Duration, bool) {
	lim := s.limits()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []struct {
		key   string
		limit int
	}{{"ip:" + ip, lim.LoginFailuresPerIP}, {"user:" + user, lim.LoginFailuresPerUser}} {
		if f := s.fails[k.key]; f != nil && now.Before(f.reset) && f.n >= k.limit {
			return f.reset.Sub(now), true
		}
	}
	return 0, false
}

// failed counts a failed login of ip and user.
func (s *Store) failed(ip, user string, now time.Time) {
	window := s.limits().LoginWindow
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []string{"ip:" + ip, "user:" + user} {
		f := s.fails[k]
		if f == nil || !now.Before(f.reset) {
			// Bound the table: under a flood of distinct names, old windows go first.
			if len(s.fails) >= 100000 {
				continue
			}
			f = &failures{reset: now.Add(window)}
			s.fails[k] = f
		}
		f.n++
	}
}

// isAuthError reports PostgreSQL's answer to bad credentials: invalid_password
// (28P01; also what an unknown role gets with scram) or
// invalid_authorization_specification (28000, no pg_hba entry, or login not allowed).
func isAuthError(err error) bool {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == "28P01" || pe.Code == "28000"
	}
	return false
}

func (s *Store) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.connCfg == nil {
		s.loginsUnavailable.Add(1)
		writeError(w, http.StatusServiceUnavailable, "logins disabled: no database configured")
		return
	}
	f, err := decodeBody(w, r, "username", "password")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad login body")
		return
	}
	user, password := f["username"], f["password"]
	if user == "" {
		user = f["user"]
	}
	ip := clientIP(r)
	now := time.Now()
	if wait, ok := s.limited(ip, user, now); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		s.loginsLimited.Add(1)
		s.log.Warn().Str("user", user).Str("remote", ip).Msg("login rate-limited")
		writeError(w, http.StatusTooManyRequests, "too many failed logins, try again later")
		return
	}
	badCredentials := func() {
		s.loginsFailed.Add(1)
		s.failed(ip, user, now)
		s.log.Info().Str("user", user).Str("remote", ip).Msg("login failed: bad credentials")
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
	}
	if user == "" || password == "" || len(user) > 63 {
		badCredentials()
		return
	}

	cc := s.connCfg.Copy()
	cc.User, cc.Password = user, password
	cc.ConnectTimeout = s.cfg.ConnectTimeout
	cc.RuntimeParams["application_name"] = "mtrelay-session"
	// A query interrupted by its timeout, or by the client going away, is cancelled
	// on the server and the connection stays usable; pgx's default would close it
	// (a deadline on the socket) and so end the session. The deadline stays as the
	// fallback when the server does not answer the cancel request.
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 3 * time.Second}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		if isAuthError(err) {
			badCredentials()
			return
		}
		s.loginsUnavailable.Add(1)
		s.dbErrors.Add(1)
		s.log.Error().Err(err).Str("user", user).Msg("login failed: database unavailable")
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
		return
	}
	var isUser, isAdmin bool
	err = conn.QueryRow(ctx, `SELECT pg_has_role('mtrelay_user', 'MEMBER'), pg_has_role('mtrelay_admin', 'MEMBER')`).Scan(&isUser, &isAdmin)
	if err != nil || !(isUser || isAdmin) {
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			s.loginsUnavailable.Add(1)
			s.dbErrors.Add(1)
			s.log.Error().Err(err).Str("user", user).Msg("login failed: role check")
			writeError(w, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		// A role outside mtrelay_user looks like a wrong password: nothing to probe.
		badCredentials()
		return
	}

	ictx, icancel := context.WithCancel(context.Background())
	in := &instance{
		id: newID(idBytes), csrf: newID(idBytes), user: user, admin: isAdmin,
		created: now, lastSeen: now, ctx: ictx, cancel: icancel, conn: conn,
		log: s.log.With().Str("user", user).Logger(),
	}
	// A new id on every login (no fixation): the old session, if any, ends; the
	// state handlers attached to it (Value) moves to the new one.
	var old *instance
	if id, ok := cookieID(r); ok {
		old = s.remove(id)
	}
	if old != nil {
		in.state = old.takeState()
	}
	s.mu.Lock()
	err = s.addLocked(in)
	s.mu.Unlock()
	if old != nil {
		s.closeAsync(old)
	}
	if err != nil {
		s.loginsUnavailable.Add(1)
		in.close(s.cfg.ConnectTimeout)
		s.log.Warn().Err(err).Str("user", user).Msg("login refused")
		writeError(w, http.StatusServiceUnavailable, strings.TrimPrefix(err.Error(), "session: "))
		return
	}
	s.loginsOK.Add(1)
	s.setCookie(w, r, in)
	s.mu.Lock()
	delete(s.fails, "user:"+user)
	s.mu.Unlock()
	in.log.Info().Str("remote", ip).Bool("admin", isAdmin).Msg("login")
	writeJSON(w, http.StatusOK, sessionBody{User: user, CSRF: in.csrf, Admin: isAdmin})
}

func (s *Store) handleLogout(w http.ResponseWriter, r *http.Request) {
	id, ok := cookieID(r)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	in := s.lookup(id)
	if in == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !in.anonymous() && !in.csrfOK(r.Header.Get("X-CSRF-Token")) {
		writeError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token header")
		return
	}
	s.remove(in.id)
	in.cancel()
	in.close(s.cfg.ConnectTimeout)
	if !in.anonymous() {
		in.log.Info().Msg("logout")
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Store) handleSession(w http.ResponseWriter, r *http.Request, in *instance) {
	writeJSON(w, http.StatusOK, sessionBody{User: in.user, CSRF: in.csrf, Admin: in.admin})
}

// Key is a stream key as the API shows it.
type Key struct {
	ID        int64     `json:"id"`
	App       string    `json:"app"`
	Stream    string    `json:"stream"`
	Key       string    `json:"key"`
	Owner     string    `json:"owner"`
	CreatedAt time.Time `json:"created_at"`
	// Active is false once the key was revoked (RevokedAt says when); only active
	// keys may publish.
	Active    bool       `json:"active"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// keyColumns are the columns scanned by scanKey.
const keyColumns = `id, app, stream, key, owner, created_at, active, revoked_at`

func scanKey(row pgx.Row, k *Key) error {
	return row.Scan(&k.ID, &k.App, &k.Stream, &k.Key, &k.Owner, &k.CreatedAt, &k.Active, &k.RevokedAt)
}

// dbError answers a failed query on a user's connection: 403 for a refused
// permission, 409 for a constraint, 401 when the session ended meanwhile or its
// connection broke (the session is gone then: the user logs in again), 503 else.
// Connection and server errors count in Stats.DatabaseErrors.
func (s *Store) dbError(w http.ResponseWriter, in *instance, op string, err error) {
	if isConnError(err) {
		s.dbErrors.Add(1)
	}
	if errors.Is(err, errCanceledByClient) {
		in.log.Debug().Err(err).Str("op", op).Msg("query canceled: the client went away")
		writeError(w, http.StatusServiceUnavailable, "request canceled")
		return
	}
	if errors.Is(err, errQueryTimeout) {
		in.log.Warn().Err(err).Str("op", op).Msg("query timed out")
		writeError(w, http.StatusServiceUnavailable, "query timed out")
		return
	}
	if errors.Is(err, ErrSessionEnded) {
		if s.remove(in.id) != nil {
			s.closeAsync(in)
			in.log.Warn().Err(err).Str("op", op).Msg("session ended: its database connection broke")
		}
		writeError(w, http.StatusUnauthorized, "session ended, log in again")
		return
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && (pe.Code == "42501" || strings.HasPrefix(pe.Code, "28")) {
		writeError(w, http.StatusForbidden, "permission denied")
		return
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && strings.HasPrefix(pe.Code, "23") {
		writeError(w, http.StatusConflict, pe.Message)
		return
	}
	in.log.Warn().Err(err).Str("op", op).Msg("query failed")
	writeError(w, http.StatusServiceUnavailable, "database unavailable")
}

func (s *Store) handleListKeys(w http.ResponseWriter, r *http.Request, in *instance) {
	writeRows(s, w, r, in, "list keys", func(row pgx.CollectableRow) (Key, error) {
		var k Key
		err := scanKey(row, &k)
		return k, err
	}, `SELECT `+keyColumns+` FROM mtrelay.stream_keys ORDER BY id`)
}

// writeRows runs query with args on the user's own connection (so row-level
// security applies) and answers 200 with the rows, each read by scan, as a JSON
// array ([] for none); a failure is answered by dbError, naming op.
func writeRows[T any](s *Store, w http.ResponseWriter, r *http.Request, in *instance, op string,
	scan func(pgx.CollectableRow) (T, error), query string, args ...any) {
	var out []T
	err := in.do(r.Context(), s.limits().QueryTimeout, func(ctx context.Context, conn *pgx.Conn) error {
		rows, _ := conn.Query(ctx, query, args...)
		var err error
		out, err = pgx.CollectRows(rows, scan)
		return err
	})
	if err != nil {
		s.dbError(w, in, op, err)
		return
	}
	if out == nil {
		out = []T{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Store) handleCreateKey(w http.ResponseWriter, r *http.Request, in *instance) {
	f, err := decodeBody(w, r, "app", "stream")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad body")
		return
	}
	if err := relay.ValidateKey(f["app"] + "/" + f["stream"]); err != nil || len(f["app"]) > 128 || len(f["stream"]) > 128 {
		writeError(w, http.StatusBadRequest, "bad app or stream name")
		return
	}
	var k Key
	err = in.do(r.Context(), s.limits().QueryTimeout, func(ctx context.Context, conn *pgx.Conn) error {
		return scanKey(conn.QueryRow(ctx, `INSERT INTO mtrelay.stream_keys (app, stream, key) VALUES ($1, $2, $3)
RETURNING `+keyColumns, f["app"], f["stream"], newID(24)), &k)
	})
	if err != nil {
		s.dbError(w, in, "create key", err)
		return
	}
	in.log.Info().Str("stream", k.App+"/"+k.Stream).Int64("key_id", k.ID).Msg("stream key created")
	writeJSON(w, http.StatusCreated, k)
}

func (s *Store) handleDeleteKey(w http.ResponseWriter, r *http.Request, in *instance) {
	s.execOnKey(w, r, in, "delete key", `DELETE FROM mtrelay.stream_keys WHERE id = $1`, "stream key deleted")
}

// handleRevokeKey sets a key inactive on the user's own connection (row-level
// security: other users' keys are "not found"). Revoking a revoked key is a no-op
// 204: revoked rows match too, so that the answer says whether the key exists, not
// whether it was still active. Streams already running with the key keep going; kick
// them to stop them.
func (s *Store) handleRevokeKey(w http.ResponseWriter, r *http.Request, in *instance) {
	s.execOnKey(w, r, in, "revoke key", `UPDATE mtrelay.stream_keys SET active = false WHERE id = $1`, "stream key revoked")
}

// execOnKey runs query with the key id from the path on the user's own connection and
// answers 204, or 404 when no row matched: row-level security hides other users' keys,
// so they are "not found" too.
func (s *Store) execOnKey(w http.ResponseWriter, r *http.Request, in *instance, op, query, logMsg string) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such key")
		return
	}
	var n int64
	err = in.do(r.Context(), s.limits().QueryTimeout, func(ctx context.Context, conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, query, id)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		s.dbError(w, in, op, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusNotFound, "no such key")
		return
	}
	in.log.Info().Int64("key_id", id).Msg(logMsg)
	w.WriteHeader(http.StatusNoContent)
}

// Publish is one row of the publish log as the API shows it.
type Publish struct {
	ID        int64      `json:"id"`
	AppStream string     `json:"app_stream"`
	Owner     string     `json:"owner"`
	Remote    string     `json:"remote"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	// Duration is in seconds; null while the publish is live.
	Duration *float64 `json:"duration_seconds"`
}

// handlePublishes lists the newest 100 rows of the publish log that the user's own
// connection may read (their own; admins all).
func (s *Store) handlePublishes(w http.ResponseWriter, r *http.Request, in *instance) {
	var out []Publish
	err := in.do(r.Context(), s.limits().QueryTimeout, func(ctx context.Context, conn *pgx.Conn) error {
		rows, _ := conn.Query(ctx, `SELECT id, app_stream, owner, remote, started_at, ended_at,
extract(epoch FROM duration)::float8 FROM mtrelay.publish_log ORDER BY id DESC LIMIT 100`)
		var err error
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Publish, error) {
			var p Publish
			err := row.Scan(&p.ID, &p.AppStream, &p.Owner, &p.Remote, &p.StartedAt, &p.EndedAt, &p.Duration)
			return p, err
		})
		return err
	})
	if err != nil {
		s.dbError(w, in, "list publishes", err)
		return
	}
	if out == nil {
		out = []Publish{}
	}
	writeJSON(w, http.StatusOK, out)
}

// LiveStream is a live stream as the console shows it: the hub's stats plus whether
// this user may kick it.
type LiveStream struct {
	relay.StreamStats
	// Mine is true when the stream was published with one of the user's keys, or
	// the user is an admin: the console shows a kick button.
	Mine bool `json:"mine"`
}

// handleLive lists the hub's live streams (the same ones the public stream list
// shows), each marked with whether this user may kick it.
func (s *Store) handleLive(w http.ResponseWriter, r *http.Request, in *instance) {
	out := []LiveStream{}
	if s.hub != nil {
		for _, st := range s.hub.Streams() {
			owner, live := s.hub.PublisherOwner(st.Key)
			if !live {
				continue
			}
			out = append(out, LiveStream{StreamStats: st, Mine: in.admin || (owner != "" && owner == in.user)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Store) handleKick(w http.ResponseWriter, r *http.Request, in *instance) {
	key := r.PathValue("app") + "/" + r.PathValue("stream")
	if s.hub == nil || relay.ValidateKey(key) != nil {
		writeError(w, http.StatusNotFound, "stream not live")
		return
	}
	err := s.hub.Kick(key, func(pi relay.PublisherInfo) bool {
		return in.admin || (pi.Owner != "" && pi.Owner == in.user)
	})
	switch {
	case errors.Is(err, relay.ErrNoPublisher):
		writeError(w, http.StatusNotFound, "stream not live")
	case errors.Is(err, relay.ErrAccessDenied):
		writeError(w, http.StatusForbidden, "not your stream")
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		in.log.Info().Str("stream", key).Msg("publisher kicked")
		w.WriteHeader(http.StatusNoContent)
	}
}
