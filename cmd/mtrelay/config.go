package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config is the whole relay configuration: one struct that flows into the components.
type Config struct {
	RTMPAddr  string
	HTTPAddr  string
	LogLevel  string
	LogFormat string
	AccessLog string // info|debug|off: the level of the HTTP access log (accesslog.go)

	// RTMP
	ChunkSize        uint
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	WriteTimeout     time.Duration
	WriteCoalesce    time.Duration
	MaxMessageSize   uint
	MaxConns         int

	// Hub
	QueuePackets  int
	QueueBytes    int
	QueueDuration time.Duration
	SlowGrace     time.Duration
	GOPFrames     int
	GOPBytes      int
	PlayWait      time.Duration

	// RTMPT
	TunnelMaxTunnels      int
	TunnelMaxTunnelsPerIP int
	TunnelIdleTimeout     time.Duration
	TunnelMaxBody         int64
	TunnelMaxPending      int

	// TLS
	TLSCert   string
	TLSKey    string
	RTMPSAddr string
	HTTPSAddr string

	ShutdownTimeout time.Duration

	// Sessions and stream keys (see session.Config); no DatabaseURL means open
	// publishing and no logins.
	DatabaseURL        string
	SessionIdleTimeout time.Duration
	SessionMaxAge      time.Duration
	MaxSessions        int
	sessionConfig      // the other session flags (session.go)

	// DebugAddr is where net/http/pprof is served; empty (the default) means off.
	DebugAddr string

	// Operations (metrics.go, configfile.go).
	ConfigFile        string // YAML file read by parseConfig (flag > env > file > default)
	MetricsAddr       string // empty: /metrics on the HTTP port
	MetricsPerStream  bool
	MetricsMaxStreams int

	hookConfig  // HTTP hooks (hooks.go)
	allowConfig // allowed publishers and players (allow.go)
	vodConfig   // VOD playback of FLV files (vod.go)

	recordConfig // recording to FLV files (record.go)
}

// tlsEnabled reports whether a certificate is configured.
func (c *Config) tlsEnabled() bool { return c.TLSCert != "" || c.TLSKey != "" }

// envName turns a flag name into its environment variable: rtmp-addr → MTRELAY_RTMP_ADDR.
func envName(flagName string) string {
	return "MTRELAY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet declares every flag on fs, bound to cfg with defaults.
func newFlagSet(cfg *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mtrelay", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.RTMPAddr, "rtmp-addr", ":1935", "RTMP listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", ":8080", "HTTP listen address (API, RTMPT, playback)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug|info|warn|error")
	fs.StringVar(&cfg.AccessLog, "access-log", "debug", "HTTP access log, one line per request at this level: info|debug|off")
	fs.StringVar(&cfg.LogFormat, "log-format", "", "log format: console|json (default: console on a terminal, json otherwise)")

	fs.UintVar(&cfg.ChunkSize, "chunk-size", 4096, "outgoing RTMP chunk size")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", 10*time.Second, "RTMP handshake timeout")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 30*time.Second, "close a non-playing connection (idle publisher) silent for this long")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 10*time.Second, "close a player whose writes make no progress for this long")
	fs.DurationVar(&cfg.WriteCoalesce, "write-coalesce", 20*time.Millisecond, "hold a player's audio up to this long to send it with the next video frame (about half the write syscalls per player, up to this much audio latency; video is never held; 0 = off)")
	fs.UintVar(&cfg.MaxMessageSize, "max-message-size", 8<<20, "largest RTMP message accepted from a peer, bytes")
	fs.IntVar(&cfg.MaxConns, "max-conns", 4096, "maximum concurrent RTMP connections (TCP and tunnelled)")

	fs.IntVar(&cfg.QueuePackets, "queue-packets", 2048, "per-player queue capacity, packets")
	fs.IntVar(&cfg.QueueBytes, "queue-bytes", 16<<20, "per-player queue capacity, bytes")
	fs.DurationVar(&cfg.QueueDuration, "queue-duration", 10*time.Second, "per-player queue capacity, media time")
	fs.DurationVar(&cfg.SlowGrace, "slow-grace", 10*time.Second, "disconnect a player that stays behind this long")
	fs.IntVar(&cfg.GOPFrames, "gop-frames", 2048, "GOP cache cap, packets")
	fs.IntVar(&cfg.GOPBytes, "gop-bytes", 16<<20, "GOP cache cap, bytes")
	fs.DurationVar(&cfg.PlayWait, "play-wait", 30*time.Second, "how long a player waits for a publisher")
	fs.IntVar(&cfg.TunnelMaxTunnels, "rtmpt-max-tunnels", 1000, "maximum open RTMPT tunnels")
	fs.IntVar(&cfg.TunnelMaxTunnelsPerIP, "rtmpt-max-tunnels-per-ip", 50, "maximum open RTMPT tunnels per client IP")
	fs.DurationVar(&cfg.TunnelIdleTimeout, "rtmpt-idle-timeout", 30*time.Second, "close an RTMPT tunnel with no request for this long")
	fs.Int64Var(&cfg.TunnelMaxBody, "rtmpt-max-body", 1<<20, "largest RTMPT request body, bytes (413 above)")
	fs.IntVar(&cfg.TunnelMaxPending, "rtmpt-max-pending", 8<<20, "output bytes queued per RTMPT tunnel before it counts as a slow player")

	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM); with --tls-key enables RTMPS and HTTPS (RTMPTS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&cfg.RTMPSAddr, "rtmps-addr", ":1936", "RTMPS listen address (only with --tls-cert)")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", ":8443", "HTTPS listen address for the HTTP handlers and RTMPTS (only with --tls-cert)")

	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL of the relay's service role (mtrelay_service): enables stream keys and logins; empty: open publishing, no logins")
	fs.DurationVar(&cfg.SessionIdleTimeout, "session-idle-timeout", 30*time.Minute, "end a console session unused for this long (closes its database connection)")
	fs.DurationVar(&cfg.SessionMaxAge, "session-max-age", 12*time.Hour, "end a console session this long after login")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", 1000, "maximum live console sessions (each holds one database connection)")
	addSessionFlags(fs, &cfg.sessionConfig) // session.go
	addHookFlags(fs, &cfg.hookConfig)       // hooks.go
	addAllowFlags(fs, &cfg.allowConfig)     // allow.go
	addVODFlags(fs, &cfg.vodConfig)         // vod.go
	addRecordFlags(fs, &cfg.recordConfig)   // record.go

	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 4*time.Second, "how long shutdown waits for connections to drain")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060 (off when empty)")

	fs.StringVar(&cfg.ConfigFile, "config", "", "YAML config file: keys are flag names (precedence flag > env > file > default)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address instead of the HTTP port")
	fs.BoolVar(&cfg.MetricsPerStream, "metrics-per-stream", false, "also export per-stream series (labelled by stream key)")
	fs.IntVar(&cfg.MetricsMaxStreams, "metrics-max-streams", 100, "with --metrics-per-stream: export only this many streams, those with the most subscribers")

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: mtrelay [flags]\n\nEvery flag can also be set with an environment variable MTRELAY_<NAME>,\ne.g. MTRELAY_RTMP_ADDR for --rtmp-addr, and in the YAML --config file under its\nname (rtmp-addr: \":1935\"). Precedence: flag > env > file > default.\n\nCommands: mtrelay [flags] | check-config [flags] | version | migrate [flags]\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(out, "  --%s (env %s, default %q)\n    \t%s\n", f.Name, envName(f.Name), f.DefValue, f.Usage)
		})
	}
	return fs
}

// parseConfig reads flags from args, MTRELAY_* variables from env and the --config
// file (flag > env > file > default).
func parseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var cfg Config
	fs := newFlagSet(&cfg, out)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := applyConfigFile(fs, set, getenv); err != nil { // configfile.go
		return cfg, err
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

func (c *Config) validate() error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug|info|warn|error", c.LogLevel)
	}
	switch c.AccessLog {
	case "info", "debug", "off":
	default:
		return fmt.Errorf("--access-log %q: want info|debug|off", c.AccessLog)
	}
	switch c.LogFormat {
	case "", "console", "json":
	default:
		return fmt.Errorf("--log-format %q: want console|json", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.ChunkSize < 128 || c.ChunkSize > 0xFFFFFF {
		return fmt.Errorf("--chunk-size %d: want 128..16777215", c.ChunkSize)
	}
	if c.MaxMessageSize < 1<<10 || c.MaxMessageSize > 0xFFFFFF {
		return fmt.Errorf("--max-message-size %d: want 1024..16777215 (RTMP lengths are 24-bit)", c.MaxMessageSize)
	}
	if err := c.validateSessions(); err != nil { // session.go
		return err
	}
	if err := c.validateHooks(); err != nil { // hooks.go
		return err
	}
	if err := c.validateAllow(); err != nil { // allow.go
		return err
	}
	if err := c.validateVOD(); err != nil { // vod.go
		return err
	}
	if err := c.validateRecord(); err != nil { // record.go
		return err
	}
	if c.MetricsMaxStreams <= 0 {
		return fmt.Errorf("--metrics-max-streams %d: must be positive", c.MetricsMaxStreams)
	}
	if c.RTMPAddr == "" || c.HTTPAddr == "" {
		return fmt.Errorf("--rtmp-addr and --http-addr must not be empty")
	}
	return nil
}
