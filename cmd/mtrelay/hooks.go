package main

// HTTP hooks (session/hooks): flags, validation and the access controller that
// combines them with the session store's stream-key check. Kept in its own file so
// config.go and run.go only gain a line or two each.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
	"github.com/mtrelay/mtrelay/session/hooks"
)

// hookConfig is the hooks part of Config (embedded there, so its fields read as
// cfg.OnPublish and so on).
type hookConfig struct {
	OnPublish     string        // URL POSTed before a publish; empty: no hook
	OnPlay        string        // URL POSTed before a play; empty: no hook
	OnDone        string        // URL POSTed when a publish ends; empty: no hook
	HookTimeout   time.Duration // bound on one hook request
	HooksFailOpen bool          // allow when a hook cannot answer
}

// addHookFlags declares the hook flags on fs.
func addHookFlags(fs *flag.FlagSet, c *hookConfig) {
	fs.StringVar(&c.OnPublish, "on-publish", "", "HTTP hook POSTed (form: call, app, name, addr, protocol, args and each query parameter) before every publish: 2xx allows, 3xx renames the stream to the Location's last path element, anything else refuses")
	fs.StringVar(&c.OnPlay, "on-play", "", "HTTP hook POSTed before every RTMP/RTMPT play, answered like --on-publish")
	fs.StringVar(&c.OnDone, "on-done", "", "HTTP hook POSTed (call=done) when a publish ends; the answer is ignored")
	fs.DurationVar(&c.HookTimeout, "hook-timeout", hooks.DefaultTimeout, "a hook that does not answer within this refuses (see --hooks-fail-open)")
	fs.BoolVar(&c.HooksFailOpen, "hooks-fail-open", false, "allow when a hook cannot be reached, times out or answers 502/503/504")
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
	hc := hooks.Config{OnPublish: c.OnPublish, OnPlay: c.OnPlay, OnDone: c.OnDone,
		Timeout: c.HookTimeout, FailOpen: c.HooksFailOpen}
	if _, err := hooks.New(hc, zerolog.Nop()); err != nil {
		return hc, fmt.Errorf("--on-publish/--on-play/--on-done: %w", err)
	}
	return hc, nil
}

// newAccessControl returns the relay's access controller: the session store alone,
// or, when a hook URL is set, the store and the hooks both (relay.AllOf: the stream
// key is checked first, on the name the client gave, then the hooks, which may
// rename). It also returns the bound for one whole decision (0: rtmp's default) and
// a function that closes the hooks client, waiting for on_done calls until the
// shutdown timeout.
func newAccessControl(cfg Config, log zerolog.Logger, sess *session.Store) (relay.AccessController, time.Duration, func(), error) {
	hc, err := cfg.hooksConfig()
	if err != nil {
		return nil, 0, nil, err
	}
	h, err := hooks.New(hc, log)
	if err != nil {
		return nil, 0, nil, err
	}
	closeHooks := func() {
		ctx, cancel := context.WithTimeoutCause(context.Background(), cfg.ShutdownTimeout,
			errors.New("shutdown timeout"))
		defer cancel()
		if err := h.Close(ctx); err != nil {
			log.Warn().Err(err).Msg("hooks did not finish in time")
		}
	}
	if !h.Enabled() {
		return sess, 0, closeHooks, nil
	}
	log.Info().Bool("on_publish", hc.OnPublish != "").Bool("on_play", hc.OnPlay != "").
		Bool("on_done", hc.OnDone != "").Dur("timeout", hc.Timeout).Bool("fail_open", hc.FailOpen).
		Msg("HTTP hooks on")
	// The stream-key query and the hook run one after the other within one decision.
	return relay.AllOf(sess, h), 5*time.Second + hc.Timeout, closeHooks, nil
}
