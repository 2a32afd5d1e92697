package httptunnel

import (
	"fmt"
	"time"
)

// Limits are the Config fields a Server can change while it runs (SetLimits). A zero
// field means the default documented on Config; a negative one is an error.
type Limits struct {
	MaxBodyBytes    int64         // Config.MaxBodyBytes: 413 above it, from the next request
	MaxTunnels      int           // Config.MaxTunnels: checked on every /open/1
	MaxTunnelsPerIP int           // Config.MaxTunnelsPerIP: checked on every /open/1
	IdleTimeout     time.Duration // Config.IdleTimeout: the reaper judges every tunnel by it from its next tick
}

// limits returns the limits in effect.
func (s *Server) limits() *Limits { return s.lim.Load() }

// Limits returns the limits in effect, with defaults filled in.
func (s *Server) Limits() Limits { return *s.lim.Load() }

// SetLimits changes the server's limits while it runs (a config reload); on error
// nothing changes. Open tunnels are never closed by it: a lowered MaxTunnels or
// MaxTunnelsPerIP refuses new tunnels until enough have ended; a new MaxBodyBytes
// applies to the next request; a new IdleTimeout applies to every tunnel from the
// reaper's next tick (within a quarter of the old timeout). The other Config fields
// are fixed at New, and so is the input a tunnel buffers for its handler before a
// /send waits (Config.MaxBodyBytes at New). Safe for concurrent use.
func (s *Server) SetLimits(l Limits) error {
	c := Config{MaxBodyBytes: l.MaxBodyBytes, MaxTunnels: l.MaxTunnels, MaxTunnelsPerIP: l.MaxTunnelsPerIP, IdleTimeout: l.IdleTimeout}
	c, err := c.withDefaults()
	if err != nil {
		return fmt.Errorf("httptunnel set limits: %w", err)
	}
	s.lim.Store(limitsOf(c))
	return nil
}

// limitsOf returns the Limits part of c, which has its defaults filled in.
func limitsOf(c Config) *Limits {
	return &Limits{MaxBodyBytes: c.MaxBodyBytes, MaxTunnels: c.MaxTunnels, MaxTunnelsPerIP: c.MaxTunnelsPerIP, IdleTimeout: c.IdleTimeout}
}
