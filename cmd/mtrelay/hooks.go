package main

// HTTP hooks (session/hooks): flags, validation, the access controller that
// combines them with the session store's stream-key check, live reload of the hooks,
// and the masking of credentials in URL-valued settings. Kept in its own file so
// config.go and run.go only gain a line or two each.

import (
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
	"github.com/mtrelay/mtrelay/session/hooks"
)

// hookConfig is the hooks part of Config (embedded there, so its fields read as
// cfg.OnPublish and so on).
type hookConfig struct {
	OnConnect     string        // URL POSTed on an RTMP connect; empty: no hook
	OnPublish     string        // URL POSTed before a publish; empty: no hook
	OnPlay        string        // URL POSTed before a play; empty: no hook
	OnDone        string        // URL POSTed when a publish ends; empty: no hook
	HookTimeout   time.Duration // bound on one hook request
	HooksFailOpen bool          // allow when a hook cannot answer
	HookFormat    string        // form|json
}

// addHookFlags declares the hook flags on fs.
func addHookFlags(fs *flag.FlagSet, c *hookConfig) {
	fs.StringVar(&c.OnConnect, "on-connect", "", "HTTP hook POSTed (call=connect: app, tcurl, flashver, addr, protocol, args) on every RTMP/RTMPT/RTMPS/RTMPTS connect before it is answered: 2xx allows, 3xx moves the connection to the app named by the Location's last path element, anything else rejects it")
	fs.StringVar(&c.OnPublish, "on-publish", "", "HTTP hook POSTed (call=publish: app, name, addr, protocol, tcurl, args and each query parameter) before every publish: 2xx allows, 3xx renames the stream to the Location's last path element, anything else refuses")
	fs.StringVar(&c.OnPlay, "on-play", "", "HTTP hook POSTed (call=play) before every play, RTMP/RTMPT/RTMPS and HTTP (protocol http-flv, hls, page, vod), answered like --on-publish")
	fs.StringVar(&c.OnDone, "on-done", "", "HTTP hook POSTed (call=done) when a publish ends; the answer is ignored")
	fs.DurationVar(&c.HookTimeout, "hook-timeout", hooks.DefaultTimeout, "a hook that does not answer within this refuses (see --hooks-fail-open)")
	fs.BoolVar(&c.HooksFailOpen, "hooks-fail-open", false, "allow when a hook cannot be reached, times out or answers 502/503/504")
	fs.StringVar(&c.HookFormat, "hook-format", hooks.FormatForm, "hook request body: form (application/x-www-form-urlencoded, nginx-rtmp compatible) or json")
}

// validateHooks checks the hook flags.
func (c *hookConfig) validateHooks() error {
	if c.HookTimeout <= 0 {
		return fmt.Errorf("--hook-timeout %s: must be positive", c.HookTimeout)
	}
	_, err := c.hooksConfig()
	return err
}

func (c *hookConfig) hooksConfig() (hooks.Config, error) {
	hc := hooks.Config{OnConnect: c.OnConnect, OnPublish: c.OnPublish, OnPlay: c.OnPlay, OnDone: c.OnDone,
		Timeout: c.HookTimeout, FailOpen: c.HooksFailOpen, Format: c.HookFormat}
	if _, err := hooks.New(hc, zerolog.Nop()); err != nil {
		return hc, fmt.Errorf("--on-connect/--on-publish/--on-play/--on-done/--hook-format: %w", err)
	}
	return hc, nil
}

// minDecisionBound is the least time one hook request may take within a whole access
// decision, whatever --hook-timeout is at start, so that a reload can raise
// --hook-timeout up to it.
const minDecisionBound = 30 * time.Second

// hookSet is the relay's access chain (session store, then hooks) and the hooks
// client in it, which a reload reconfigures.
type hookSet struct {
	// ctl decides on every connect, publish and play: RTMP (rtmp.Config.Access)
	// and HTTP viewers (mountMedia). Immutable after newAccessControl.
	ctl relay.AccessController
	// timeout bounds one whole decision: the stream-key query, then one hook
	// request of at most hookBound. Immutable.
	timeout   time.Duration
	hookBound time.Duration  // immutable
	client    *hooks.Client  // never nil; its configuration changes on reload
	log       zerolog.Logger // immutable
	shutdown  time.Duration  // immutable: how long close waits for on_done calls
	allow     *allowControl  // immutable; first in ctl, its lists change on reload (allow.go)
}

// newAccessControl returns the relay's access chain: relay.AllOf of the session
// store's stream-key check (first, on the name the client gave) and the hooks
// (which may rename). The hooks client is built even without any hook URL (it then
// allows everything), so that a reload can add one.
func newAccessControl(cfg Config, log zerolog.Logger, sess *session.Store) (*hookSet, error) {
	hc, err := cfg.hooksConfig()
	if err != nil {
		return nil, err
	}
	h, err := hooks.New(hc, log)
	if err != nil {
		return nil, err
	}
	bound := max(hc.Timeout, minDecisionBound)
	allow := newAllowControl(cfg.allowConfig, log) // allow.go: --allow-publish/--allow-play
	hs := &hookSet{
		// The stream-key query and the hook run one after the other within one decision.
		ctl:       allow.chain(relay.AllOf(sess, h)), // allow.go: allow lists first, decisions counted
		allow:     allow,
		timeout:   5*time.Second + bound,
		hookBound: bound,
		client:    h,
		log:       log,
		shutdown:  cfg.ShutdownTimeout,
	}
	if h.Enabled() {
		hs.logConfig("HTTP hooks on", hc)
	}
	return hs, nil
}

func (hs *hookSet) logConfig(msg string, hc hooks.Config) {
	hs.log.Info().Bool("on_connect", hc.OnConnect != "").Bool("on_publish", hc.OnPublish != "").
		Bool("on_play", hc.OnPlay != "").Bool("on_done", hc.OnDone != "").Dur("timeout", hc.Timeout).
		Bool("fail_open", hc.FailOpen).Str("format", hc.Format).Msg(msg)
}

// reload applies the hook settings of cfg (on-connect, on-publish, on-play, on-done,
// hook-timeout, hooks-fail-open, hook-format) to the running relay: decisions from
// now on use them; those in progress finish with the old ones. Nothing changes when
// it returns an error: a setting that does not validate, or a --hook-timeout above
// the bound fixed at start (max(start value, 30s)), which needs a restart. Safe to
// call concurrently with decisions; calling it with unchanged settings is harmless.
func (hs *hookSet) reload(cfg Config) error {
	hc, err := cfg.hooksConfig()
	if err != nil {
		return err
	}
	if hc.Timeout > hs.hookBound {
		return fmt.Errorf("--hook-timeout %s: above %s needs a restart", hc.Timeout, hs.hookBound)
	}
	if err := hs.client.SetConfig(hc); err != nil {
		return err
	}
	hs.logConfig("HTTP hooks reloaded", hs.client.Config())
	return nil
}

// close closes the hooks client, waiting for on_done calls until the shutdown
// timeout.
func (hs *hookSet) close() {
	closeWithin(hs.shutdown, hs.client.Close, hs.log, "hooks did not finish in time")
}

// maskSetting returns a setting's value as it may be printed (check-config, reload
// logs): the password of the database URL, and in any URL the password of its user
// info and the value of every query parameter, replaced by "***".
func maskSetting(name, value string) string {
	if name == "database-url" {
		return maskDatabaseURL(value)
	}
	if !strings.Contains(value, "://") {
		return value
	}
	return maskURL(value)
}

// maskURL replaces the user-info password and every query parameter's value of a
// URL with "***" (a hook URL may carry ?token=...); a value that does not parse is
// replaced whole.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "***"
	}
	var userinfo string // written by hand: url.URL would escape the stars
	if u.User != nil {
		userinfo = url.User(u.User.Username()).String()
		if _, ok := u.User.Password(); ok {
			userinfo += ":***"
		}
		userinfo += "@"
		u.User = nil
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			if k, _, ok := strings.Cut(p, "="); ok {
				parts[i] = k + "=***"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	out := u.String()
	if userinfo != "" && u.Scheme != "" && strings.HasPrefix(out, u.Scheme+"://") {
		out = u.Scheme + "://" + userinfo + out[len(u.Scheme)+3:]
	}
	return out
}
