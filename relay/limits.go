package relay

import "fmt"

// hubLimits are the limits a hub applies, replaced whole by SetLimits so that the
// push path reads them with one atomic load and no lock. A subscriber keeps a
// pointer to the queue limits it joined with.
type hubLimits struct {
	cfg Config // with defaults filled; immutable
	q   limits // cfg's queue limits in the units the push path compares; immutable
}

func newHubLimits(cfg Config) *hubLimits {
	return &hubLimits{cfg: cfg, q: limits{
		packets:   cfg.QueuePackets,
		bytes:     cfg.QueueBytes,
		durMS:     cfg.QueueDuration.Milliseconds(),
		slowGrace: cfg.SlowGrace,
		playWait:  cfg.PlayWait,
	}}
}

// queueLimits returns the limits a subscriber joining now gets.
func (h *Hub) queueLimits() *limits { return &h.lim.Load().q }

// SetLimits changes the hub's limits while it runs (a config reload): the queue caps,
// SlowGrace, the GOP cache caps and PlayWait. Zero fields mean the default and a
// negative one is an error naming the field, as in New; on error nothing changes.
//
// Nothing is dropped: streams, publishers and subscribers stay. A subscriber keeps the
// queue caps, SlowGrace and PlayWait it joined with; subscribers that join from now
// on get the new ones. The GOP cache applies the new caps from the next frame (a
// cache above a lowered cap is emptied then and refills from the next keyframe).
// Safe for concurrent use.
func (h *Hub) SetLimits(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("relay set limits: %w", err)
	}
	old := h.lim.Swap(newHubLimits(cfg))
	if old.cfg != cfg {
		h.log.Debug().Int("queue_packets", cfg.QueuePackets).Int("queue_bytes", cfg.QueueBytes).
			Dur("queue_duration", cfg.QueueDuration).Dur("slow_grace", cfg.SlowGrace).
			Int("gop_frames", cfg.GOPFrames).Int("gop_bytes", cfg.GOPBytes).Dur("play_wait", cfg.PlayWait).
			Msg("hub limits changed: they apply to subscribers that join from now on")
	}
	return nil
}

// Limits returns the limits in effect, with defaults filled in.
func (h *Hub) Limits() Config { return h.lim.Load().cfg }
