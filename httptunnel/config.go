package httptunnel

import (
	"fmt"
	"time"
)

// Protocol names reported by a tunnel's Protocol method.
const (
	// ProtocolRTMPT is RTMP tunnelled over plain HTTP.
	ProtocolRTMPT = "rtmpt"
	// ProtocolRTMPTS is RTMP tunnelled over HTTPS.
	ProtocolRTMPTS = "rtmpts"
)

// Config tunes a Server. A zero value means the documented default; negative values
// are rejected by New unless the field says otherwise.
type Config struct {
	// MaxBodyBytes caps one request body; a larger one gets 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxTunnels caps the tunnels open at once (a tunnel counts until its ServeConn
	// returned); /open/1 above it gets 503. Default 1000.
	MaxTunnels int
	// MaxTunnelsPerIP caps the tunnels open at once from one client IP; /open/1 above
	// it gets 503. Default 50. The IP is the TCP peer's: every client behind one
	// forward proxy (squid, a corporate proxy) counts as the proxy's IP, and
	// X-Forwarded-For is not trusted, since any client can set it.
	MaxTunnelsPerIP int
	// IdleTimeout closes a tunnel that received no request for this long: the conn's
	// Read returns io.EOF, so the RTMP publish or play ends. Default 30s.
	IdleTimeout time.Duration
	// MaxPending caps the output bytes queued per tunnel and not yet fetched by the
	// client. A Write that finds the queue full blocks, like a TCP write to a slow
	// peer, until the client polls, the write deadline passes (os.ErrDeadlineExceeded)
	// or the tunnel ends; memory never grows past it. Default 8 MiB.
	MaxPending int
	// ReplyMaxBytes caps the queued bytes carried by one send/idle reply (after the
	// polling byte). Default 256 KiB.
	ReplyMaxBytes int
	// SendWait bounds how long a /send waits for the handler's answer: it waits until
	// the handler has read the whole body and blocks in Read again, then for
	// SendQuiet without new output, at most SendWait in total. This brings the
	// handshake's S0+S1+S2 back in the reply to C0+C1. Default 50ms.
	SendWait time.Duration
	// SendQuiet is the quiet period that ends a reply once the handler stopped
	// writing: the reply goes out when no output came for SendQuiet (bounded by
	// SendWait or IdleHold). It lets asynchronous writers (go-rtmp's write loop) and
	// messages written chunk by chunk land in one reply. Default 2ms; negative
	// disables it.
	SendQuiet time.Duration
	// IdleHold bounds the long poll of an /idle that finds nothing queued: it is
	// answered when output appears (plus SendQuiet) or after IdleHold with the
	// polling byte alone. Default 200ms.
	IdleHold time.Duration
	// ReorderWait bounds how long a request that arrives ahead of sequence (seq
	// greater than the next expected one) waits for the missing ones; then it gets
	// 400. Default 1s.
	ReorderWait time.Duration
	// Protocol is what the tunnels' Protocol method returns: "rtmpt", "rtmpts", or ""
	// (the default) for per request: "rtmpts" when the /open/1 request came over TLS
	// (r.TLS != nil), else "rtmpt". One Server may therefore be mounted on both the
	// HTTP and the HTTPS listener, sharing its limits; set it explicitly behind a
	// TLS-terminating proxy.
	Protocol string
}

// Defaults applied by New to zero fields of Config.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxTunnels      = 1000
	DefaultMaxTunnelsPerIP = 50
	DefaultIdleTimeout     = 30 * time.Second
	DefaultMaxPending      = 8 << 20
	DefaultReplyMaxBytes   = 256 << 10
	DefaultSendWait        = 50 * time.Millisecond
	DefaultSendQuiet       = 2 * time.Millisecond
	DefaultIdleHold        = 200 * time.Millisecond
	DefaultReorderWait     = time.Second
)

// withDefaults validates c and fills its zero fields. The error names the field at fault.
func (c Config) withDefaults() (Config, error) {
	type check struct {
		name string
		neg  bool
	}
	for _, ch := range []check{
		{"MaxBodyBytes", c.MaxBodyBytes < 0},
		{"MaxTunnels", c.MaxTunnels < 0},
		{"MaxTunnelsPerIP", c.MaxTunnelsPerIP < 0},
		{"IdleTimeout", c.IdleTimeout < 0},
		{"MaxPending", c.MaxPending < 0},
		{"ReplyMaxBytes", c.ReplyMaxBytes < 0},
		{"SendWait", c.SendWait < 0},
		{"IdleHold", c.IdleHold < 0},
		{"ReorderWait", c.ReorderWait < 0},
	} {
		if ch.neg {
			return c, fmt.Errorf("httptunnel: Config.%s must not be negative", ch.name)
		}
	}
	switch c.Protocol {
	case "", ProtocolRTMPT, ProtocolRTMPTS:
	default:
		return c, fmt.Errorf("httptunnel: Config.Protocol %q: want %q, %q or empty", c.Protocol, ProtocolRTMPT, ProtocolRTMPTS)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	def(&c.MaxTunnels, DefaultMaxTunnels)
	def(&c.MaxTunnelsPerIP, DefaultMaxTunnelsPerIP)
	def(&c.MaxPending, DefaultMaxPending)
	def(&c.ReplyMaxBytes, DefaultReplyMaxBytes)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	defDur(&c.SendWait, DefaultSendWait)
	defDur(&c.SendQuiet, DefaultSendQuiet)
	defDur(&c.IdleHold, DefaultIdleHold)
	defDur(&c.ReorderWait, DefaultReorderWait)
	if c.SendQuiet < 0 {
		c.SendQuiet = 0
	}
	return c, nil
}
