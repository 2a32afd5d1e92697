package main

// Live reload: SIGHUP and POST /api/admin/reload re-read flags, env and the config
// file, apply what the running components can take without dropping a stream or a
// session, and log every changed key with whether it took effect or needs a restart.
// A configuration that does not load or validate changes nothing.
//
// What takes effect at once (liveGroups below; none closes a connection, a stream
// or a session):
//   - log-level: the root logger writes through a levelWriter whose level is atomic;
//   - access-log: the access log's level is atomic (accesslog.go);
//   - max-conns: rtmp.Server.SetMaxConns (new connections only; none is closed);
//   - handshake-timeout, idle-timeout: rtmp.Server.SetTimeouts, for connections
//     accepted from now on (running ones keep theirs);
//   - hub limits (queue-packets, queue-bytes, queue-duration, slow-grace, gop-frames,
//     gop-bytes, play-wait): relay.Hub.SetLimits; subscribers that join from now on
//     get the new queue caps, slow grace and play wait, those already playing keep
//     theirs; the GOP cache applies its new caps from the next frame;
//   - RTMPT limits (rtmpt-max-tunnels, rtmpt-max-tunnels-per-ip, rtmpt-max-body,
//     rtmpt-idle-timeout): httptunnel.Server.SetLimits; the next /open/1 and the next
//     request; open tunnels are judged by the new idle timeout from the reaper's next
//     tick; a lowered cap closes no tunnel;
//   - session limits (session-idle-timeout, session-max-age, max-sessions,
//     max-anonymous-sessions, login-failures-per-ip, login-failures-per-user,
//     login-window, session-query-timeout): session.Store.SetLimits (session.go);
//   - hooks (on-connect, on-publish, on-play, on-done, hook-timeout up to the bound
//     fixed at start, hooks-fail-open, hook-format): hookSet.reload (hooks.go);
//     decisions in progress finish with the old settings;
//   - allow-publish, allow-play: the allow lists are swapped atomically (allow.go);
//     the next publish or play is judged by them, running ones are left alone;
//   - record: record.Recorder.SetPatterns; publishes that start from now on are
//     matched against the new patterns, running recordings go on;
//   - tls-cert, tls-key: the files are read again on every reload, also when their
//     names did not change, and served through tls.Config.GetCertificate, so
//     new TLS handshakes get the new certificate and open connections keep theirs.
//
// Everything else is fixed when the components are built and needs a restart: a
// change is logged as "config change needs a restart" and the running value stays.
// That is: listen addresses (rtmp-addr, http-addr, rtmps-addr, https-addr,
// metrics-addr, debug-addr) and turning TLS on or off, log-format, database-url,
// record-dir, record-max-queue, the
// RTMP connection settings (chunk-size, write-timeout, write-coalesce,
// max-message-size: each connection reads them from the server's fixed config), rtmpt-max-pending, metrics options,
// shutdown-timeout, and a hook-timeout above its start bound.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel"
	"github.com/mtrelay/mtrelay/httptunnel/record"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
	"github.com/mtrelay/mtrelay/session"
)

// levelWriter passes on the log events at or above its level, which a reload may
// change while loggers derived from the root logger keep running. The root logger
// itself is built at the lowest level (debug), so this is the one filter.
type levelWriter struct {
	w   zerolog.LevelWriter // immutable after newLevelWriter
	min atomic.Int32        // zerolog.Level
}

var _ zerolog.LevelWriter = (*levelWriter)(nil)

func newLevelWriter(w io.Writer, lvl zerolog.Level) *levelWriter {
	lw, ok := w.(zerolog.LevelWriter)
	if !ok {
		lw = zerolog.LevelWriterAdapter{Writer: w}
	}
	l := &levelWriter{w: lw}
	l.set(lvl)
	return l
}

func (l *levelWriter) set(lvl zerolog.Level) { l.min.Store(int32(lvl)) }

// level returns the current level.
func (l *levelWriter) level() zerolog.Level { return zerolog.Level(l.min.Load()) }

// enabled reports whether events at lvl are written; callers use it to skip building
// an event that would be dropped.
func (l *levelWriter) enabled(lvl zerolog.Level) bool {
	return l == nil || lvl >= l.level()
}

func (l *levelWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

func (l *levelWriter) WriteLevel(lvl zerolog.Level, p []byte) (int, error) {
	if lvl < l.level() {
		return len(p), nil
	}
	return l.w.WriteLevel(lvl, p)
}

// reloadOpts connect run to what a reload needs; the zero value means a reload
// re-applies the start configuration and the log level is fixed.
type reloadOpts struct {
	hup   <-chan os.Signal       // SIGHUP (signal.Notify in main; tests send on it); nil: none
	load  func() (Config, error) // re-reads flags, env and the config file; nil: the start config
	level *levelWriter           // the root logger's filter; nil: log-level needs a restart
}

// certFiles serves the TLS certificate read from files, replaced in place by reloads.
type certFiles struct {
	cur atomic.Pointer[tls.Certificate] // never nil after newCertFiles
}

func newCertFiles(certFile, keyFile string) (*certFiles, error) {
	c := &certFiles{}
	return c, c.load(certFile, keyFile)
}

// load reads the pair and serves it from now on; on error the old pair stays.
func (c *certFiles) load(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// change is one config key that a reload found changed.
type change struct {
	Key     string `json:"key"`
	From    string `json:"from"`
	To      string `json:"to"`
	Applied bool   `json:"applied"` // false: needs a restart, the running value stays
}

// reloadTargets are the running components a reload changes; all are immutable.
type reloadTargets struct {
	rtmp    *rtmp.Server
	access  *accessLog
	certs   *certFiles // nil without TLS
	hub     *relay.Hub
	tunnels *httptunnel.Server
	chain   *hookSet         // hooks and allow lists (hooks.go, allow.go)
	sess    *session.Store   // session limits (session.go)
	rec     *record.Recorder // record patterns (record.go)
}

// reloader applies reloads to the running relay; reloads run one at a time.
type reloader struct {
	log   zerolog.Logger         // component=config
	load  func() (Config, error) // immutable
	level *levelWriter           // nil: log level fixed
	reloadTargets

	mu      sync.Mutex
	running Config // guarded by mu: the configuration in effect
}

func newReloader(cfg Config, log zerolog.Logger, ro reloadOpts, t reloadTargets) *reloader {
	load := ro.load
	if load == nil {
		load = func() (Config, error) { return cfg, nil }
	}
	return &reloader{
		log: log.With().Str("component", "config").Logger(), load: load, level: ro.level,
		reloadTargets: t, running: cfg,
	}
}

// liveGroup is a set of keys one component takes together: apply gets the whole
// next configuration and sets every key of the group at once.
type liveGroup struct {
	keys  []string
	apply func(rl *reloader, next Config) error
}

// liveGroups are the keys that apply live beyond those of reloader.apply's switch.
var liveGroups = []liveGroup{
	{[]string{"handshake-timeout", "idle-timeout"},
		func(rl *reloader, c Config) error {
			return rl.rtmp.SetTimeouts(rtmp.Timeouts{HandshakeTimeout: c.HandshakeTimeout, IdleTimeout: c.IdleTimeout})
		}},
	{[]string{"queue-packets", "queue-bytes", "queue-duration", "slow-grace", "gop-frames", "gop-bytes", "play-wait"},
		func(rl *reloader, c Config) error { return rl.hub.SetLimits(hubConfig(c)) }},
	{[]string{"rtmpt-max-tunnels", "rtmpt-max-tunnels-per-ip", "rtmpt-max-body", "rtmpt-idle-timeout"},
		func(rl *reloader, c Config) error {
			return rl.tunnels.SetLimits(httptunnel.Limits{MaxBodyBytes: c.TunnelMaxBody, MaxTunnels: c.TunnelMaxTunnels,
				MaxTunnelsPerIP: c.TunnelMaxTunnelsPerIP, IdleTimeout: c.TunnelIdleTimeout})
		}},
	{[]string{"session-idle-timeout", "session-max-age", "max-sessions", "max-anonymous-sessions",
		"login-failures-per-ip", "login-failures-per-user", "login-window", "session-query-timeout"},
		func(rl *reloader, c Config) error { return reloadSessionLimits(rl.sess, c) }},
	{[]string{"on-connect", "on-publish", "on-play", "on-done", "hook-timeout", "hooks-fail-open", "hook-format"},
		func(rl *reloader, c Config) error { return rl.chain.reload(c) }},
	{[]string{"allow-publish", "allow-play"},
		func(rl *reloader, c Config) error { return rl.chain.allow.set(c.allowConfig) }},
	{[]string{"record"}, func(rl *reloader, c Config) error { return reloadRecordPatterns(rl.rec, c) }},
}

// hubConfig returns the hub's part of c.
func hubConfig(c Config) relay.Config {
	return relay.Config{QueuePackets: c.QueuePackets, QueueBytes: c.QueueBytes, QueueDuration: c.QueueDuration,
		SlowGrace: c.SlowGrace, GOPFrames: c.GOPFrames, GOPBytes: c.GOPBytes, PlayWait: c.PlayWait}
}

// setRunning records key's value from next in rl.running. Called with rl.mu held.
func (rl *reloader) setRunning(key string, next Config) {
	keep := rl.running
	fs := newFlagSet(&rl.running, io.Discard) // declaring the flags writes the defaults, so:
	rl.running = keep
	if err := fs.Set(key, configValues(next)[key]); err != nil {
		rl.log.Error().Err(err).Str("key", key).Msg("reload: recording the running value failed")
	}
}

// watch reloads on every signal from hup until ctx is done.
func (rl *reloader) watch(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_, _ = rl.reload("SIGHUP")
		}
	}
}

// configValues returns every flag's value in c, by flag name, as on the command line.
func configValues(c Config) map[string]string {
	var scratch Config
	fs := newFlagSet(&scratch, io.Discard) // sets scratch to the defaults, so:
	scratch = c                            // its flags now read c's values
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = f.Value.String() })
	return out
}

// reload reads the configuration again and applies it; trigger says why, for the
// log. A configuration that does not load or validate changes nothing.
func (rl *reloader) reload(trigger string) ([]change, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	log := rl.log.With().Str("trigger", trigger).Logger()
	next, err := rl.load()
	if err != nil {
		log.Error().Err(err).Msg("reload failed: configuration unchanged")
		return nil, err
	}
	old, nw := configValues(rl.running), configValues(next)
	var changes []change
	// This reload's results of liveGroups, by index.
	groupDone := map[int]error{}
	newFlagSet(new(Config), io.Discard).VisitAll(func(f *flag.Flag) { // sorted by name
		if old[f.Name] == nw[f.Name] {
			return
		}
		ch := change{Key: f.Name, From: old[f.Name], To: nw[f.Name]}
		ch.From, ch.To = maskSetting(f.Name, ch.From), maskSetting(f.Name, ch.To) // hooks.go: no secrets in logs
		ch.Applied = rl.apply(f.Name, next, groupDone)
		ev := log.Info()
		msg := "config change applied"
		if !ch.Applied {
			ev, msg = log.Warn(), "config change needs a restart"
		}
		ev.Str("key", ch.Key).Str("from", ch.From).Str("to", ch.To).Bool("applied", ch.Applied).Msg(msg)
		changes = append(changes, ch)
	})
	// The certificate files may have been replaced under the same names.
	if rl.certs != nil && next.tlsEnabled() && rl.running.TLSCert == next.TLSCert && rl.running.TLSKey == next.TLSKey {
		if err := rl.certs.load(next.TLSCert, next.TLSKey); err != nil {
			log.Error().Err(err).Msg("tls certificate not reloaded: the previous one stays")
		} else {
			log.Info().Str("cert", next.TLSCert).Msg("tls certificate reloaded")
		}
	}
	log.Info().Int("changed", len(changes)).Msg("config reloaded")
	return changes, nil
}

// apply makes key's value in next take effect and records it in rl.running; it
// reports false when the key needs a restart. groups holds the results of the
// liveGroups already applied by this reload. Called with rl.mu held.
func (rl *reloader) apply(key string, next Config, groups map[int]error) bool {
	r := &rl.running
	for i, g := range liveGroups {
		if !slices.Contains(g.keys, key) {
			continue
		}
		err, done := groups[i]
		if !done {
			err = g.apply(rl, next)
			groups[i] = err
			if err != nil {
				rl.log.Error().Err(err).Strs("keys", g.keys).Msg("reload: not applied, the running values stay")
			}
		}
		if err != nil {
			return false
		}
		rl.setRunning(key, next)
		return true
	}
	switch key {
	case "log-level":
		lvl, err := zerolog.ParseLevel(next.LogLevel)
		if err != nil || rl.level == nil {
			return false
		}
		rl.level.set(lvl)
		r.LogLevel = next.LogLevel
	case "access-log":
		rl.access.setLevel(next.AccessLog)
		r.AccessLog = next.AccessLog
	case "max-conns":
		if rl.rtmp.SetMaxConns(next.MaxConns) != nil {
			return false
		}
		r.MaxConns = next.MaxConns
	case "tls-cert", "tls-key":
		// Other names for the files: read them, unless TLS is being turned on or off,
		// which adds or removes listeners.
		if rl.certs == nil || !next.tlsEnabled() {
			return false
		}
		if r.TLSCert == next.TLSCert && r.TLSKey == next.TLSKey {
			return true // the other key of the pair already loaded both
		}
		if err := rl.certs.load(next.TLSCert, next.TLSKey); err != nil {
			rl.log.Error().Err(err).Msg("tls certificate not reloaded: the previous one stays")
			return false
		}
		r.TLSCert, r.TLSKey = next.TLSCert, next.TLSKey
	default:
		return false
	}
	return true
}

// adminHandler is POST /api/admin/reload: it reloads and answers the changes as
// JSON. With a database it needs an admin's session and its X-CSRF-Token (401 without
// a session, 403 for a non-admin or a wrong token). Without a database there are no
// logins, so no admins: the endpoint answers 404 and SIGHUP is the only way.
func (rl *reloader) adminHandler(sess *session.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sess.Enabled() {
			http.Error(w, "reload over HTTP needs admin logins (--database-url); send SIGHUP", http.StatusNotFound)
			return
		}
		who := sess.Caller(r)
		switch {
		case !who.Session:
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
			return
		case !who.CSRFOK:
			writeJSONStatus(w, http.StatusForbidden, map[string]string{"error": "missing or wrong X-CSRF-Token header"})
			return
		case !who.Admin:
			writeJSONStatus(w, http.StatusForbidden, map[string]string{"error": "admins only"})
			return
		}
		changes, err := rl.reload("api " + who.User)
		if err != nil {
			writeJSONStatus(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
			return
		}
		if changes == nil {
			changes = []change{}
		}
		writeJSONStatus(w, http.StatusOK, map[string]any{"changes": changes})
	}
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
