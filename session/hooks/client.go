package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// Errors of this package.
var (
	// ErrTimeout is the cause of a hook request that got no answer within
	// Config.Timeout.
	ErrTimeout = errors.New("hooks: no answer in time")
	// ErrClosed is returned by Close when called twice.
	ErrClosed = errors.New("hooks: client closed")
)

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 3 * time.Second

// maxBody is how much of a hook's response body is read (and discarded), so the
// connection can be reused; the body carries no meaning, as in nginx-rtmp.
const maxBody = 64 << 10

// Config configures a Client. Empty URLs mean no hook for that event.
type Config struct {
	// OnPublish is POSTed before every publish (call=publish).
	OnPublish string
	// OnPlay is POSTed before every play (call=play).
	OnPlay string
	// OnDone is POSTed when a publish allowed by this Client ends (call=done).
	OnDone string
	// Timeout bounds one hook request, answer included; default DefaultTimeout.
	Timeout time.Duration
	// FailOpen allows a publish or play when its hook cannot be reached, does not
	// answer within Timeout, or answers 502, 503 or 504 (a proxy in front of a
	// hook server that is down). Any other answer still decides.
	FailOpen bool
	// Transport sends the requests; nil means a clone of http.DefaultTransport.
	// Redirects are never followed: a 3xx is an answer.
	Transport http.RoundTripper
}

// Client calls the hooks. It implements relay.AccessController.
type Client struct {
	cfg Config         // immutable after New
	log zerolog.Logger // immutable after New
	hc  *http.Client   // immutable after New

	bg       context.Context    // parent of on_done requests; cancelled by Close when its ctx ends
	cancelBg context.CancelFunc // immutable after New

	mu     sync.Mutex     // guards closed and the Add side of done
	closed bool           // guarded by mu
	done   sync.WaitGroup // on_done requests in flight
}

var _ relay.AccessController = (*Client)(nil)

// New validates cfg and returns a Client. Each URL must be absolute http or https.
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	for _, u := range []struct{ field, v string }{
		{"OnPublish", cfg.OnPublish}, {"OnPlay", cfg.OnPlay}, {"OnDone", cfg.OnDone},
	} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil {
			return nil, fmt.Errorf("hooks: %s: %w", u.field, err)
		}
		if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("hooks: %s %q: want an absolute http:// or https:// URL", u.field, redact(p))
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("hooks: Timeout %s: must not be negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	bg, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg: cfg,
		log: log.With().Str("component", "hooks").Logger(),
		hc: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		bg:       bg,
		cancelBg: cancel,
	}, nil
}

// Enabled reports whether any hook URL is configured.
func (c *Client) Enabled() bool {
	return c.cfg.OnPublish != "" || c.cfg.OnPlay != "" || c.cfg.OnDone != ""
}

// Authorize implements relay.AccessController: it POSTs the on_publish or on_play
// hook (allowing when that hook is not configured) and turns the answer into a
// decision. For an allowed publish with an OnDone URL, the decision's OnEnd posts
// call=done.
func (c *Client) Authorize(ctx context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
	var hook, call string
	switch req.Action {
	case relay.ActionPublish:
		hook, call = c.cfg.OnPublish, "publish"
	case relay.ActionPlay:
		hook, call = c.cfg.OnPlay, "play"
	default:
		return relay.AccessDecision{Allow: true}, nil
	}
	log := c.log.With().Str("stream", req.Key).Str("remote", req.Remote).Str("call", call).Logger()
	d := relay.AccessDecision{Allow: true}
	if hook != "" {
		var err error
		if d, err = c.decide(ctx, hook, call, req, log); err != nil {
			return d, err
		}
	}
	if d.Allow && req.Action == relay.ActionPublish && c.cfg.OnDone != "" {
		key := req.Key
		if d.Key != "" {
			key = d.Key
		}
		d.OnEnd = c.onDone(req, key, log)
	}
	return d, nil
}

// decide posts one hook and maps its answer to a decision.
func (c *Client) decide(ctx context.Context, hook, call string, req relay.AccessRequest, log zerolog.Logger) (relay.AccessDecision, error) {
	start := time.Now()
	resp, err := c.post(ctx, hook, form(call, req, req.Key))
	if err != nil {
		if ctx.Err() != nil {
			// The requester is gone (or its own deadline passed): nobody to answer.
			return relay.AccessDecision{}, fmt.Errorf("on_%s hook: %w", call, context.Cause(ctx))
		}
		why := err.Error()
		if errors.Is(err, ErrTimeout) {
			why = fmt.Sprintf("no answer within %s", c.cfg.Timeout)
		}
		if c.cfg.FailOpen {
			log.Warn().Err(err).Msg("hook unavailable; allowed (fail open)")
			return relay.AccessDecision{Allow: true}, nil
		}
		log.Warn().Err(err).Msg("hook unavailable; refused")
		return relay.AccessDecision{Reason: fmt.Sprintf("on_%s hook unavailable: %s", call, why)}, nil
	}
	log = log.With().Int("status", resp.status).Dur("took", time.Since(start)).Logger()
	switch {
	case resp.status >= 200 && resp.status < 300:
		log.Debug().Msg("hook allowed")
		return relay.AccessDecision{Allow: true}, nil
	case resp.status >= 300 && resp.status < 400:
		key, err := renamed(req.Key, resp.location)
		if err != nil {
			log.Warn().Err(err).Msg("hook redirect refused")
			return relay.AccessDecision{Reason: fmt.Sprintf("on_%s hook: %v", call, err)}, nil
		}
		log.Info().Str("renamed_to", key).Msg("hook renamed the stream")
		return relay.AccessDecision{Allow: true, Key: key}, nil
	case c.cfg.FailOpen && (resp.status == http.StatusBadGateway || resp.status == http.StatusServiceUnavailable || resp.status == http.StatusGatewayTimeout):
		log.Warn().Msg("hook server unavailable; allowed (fail open)")
		return relay.AccessDecision{Allow: true}, nil
	}
	log.Info().Msg("hook refused")
	return relay.AccessDecision{Reason: fmt.Sprintf("on_%s hook answered %d %s", call, resp.status, http.StatusText(resp.status))}, nil
}

// onDone returns the OnEnd of a publish: it posts call=done from a goroutine the
// Client owns, so the relay never waits for the hook server.
func (c *Client) onDone(req relay.AccessRequest, key string, log zerolog.Logger) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.closed {
				log.Warn().Msg("on_done hook not called: hooks client closed")
				return
			}
			c.done.Go(func() {
				resp, err := c.post(c.bg, c.cfg.OnDone, form("done", req, key))
				switch {
				case err != nil:
					log.Warn().Err(err).Msg("on_done hook failed")
				case resp.status < 200 || resp.status >= 300:
					log.Warn().Int("status", resp.status).Msg("on_done hook answered an error")
				default:
					log.Debug().Msg("on_done hook called")
				}
			})
		})
	}
}

// answer is what decides: a hook's status and Location.
type answer struct {
	status   int
	location string
}

// post sends vals to hook and returns the answer, within Config.Timeout. An error
// wraps ErrTimeout when the time ran out.
func (c *Client) post(ctx context.Context, hook string, vals url.Values) (answer, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, ErrTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, strings.NewReader(vals.Encode()))
	if err != nil {
		return answer{}, err
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("User-Agent", "mtrelay-hooks")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return answer{}, fmt.Errorf("post %s: %w", redactString(hook), ErrTimeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, which may carry credentials
		}
		return answer{}, fmt.Errorf("post %s: %w", redactString(hook), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return answer{status: resp.StatusCode, location: resp.Header.Get("Location")}, nil
}

// form builds the nginx-rtmp style body: call, app, name, addr (the client's IP),
// protocol and args (the raw query), then every query parameter as its own field
// (key=K arrives as key), except those that would shadow a field above. key is the
// stream as published after renames; when it differs from the request, it is sent as
// new_name (only on call=done).
func form(call string, req relay.AccessRequest, key string) url.Values {
	app, name, _ := strings.Cut(req.Key, "/")
	addr := req.Remote
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	v := url.Values{
		"call":     {call},
		"app":      {app},
		"name":     {name},
		"addr":     {addr},
		"protocol": {req.Protocol},
		"args":     {req.Query},
	}
	if key != req.Key {
		_, newName, _ := strings.Cut(key, "/")
		v.Set("new_name", newName)
	}
	if q, err := url.ParseQuery(req.Query); err == nil {
		for k, vs := range q {
			if _, taken := v[k]; !taken && k != "new_name" {
				v[k] = vs
			}
		}
	}
	return v
}

// renamed returns the key a 3xx answer renames key to: the app of key and the last
// path element of location (nginx-rtmp takes the new stream name from Location).
func renamed(key, location string) (string, error) {
	if location == "" {
		return "", errors.New("redirect without Location")
	}
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("redirect Location: %w", err)
	}
	p := u.Path
	if p == "" {
		p = u.Opaque
	}
	name := path.Base(p)
	app, _, _ := strings.Cut(key, "/")
	newKey := app + "/" + name
	if p == "" || strings.HasSuffix(p, "/") || relay.ValidateKey(newKey) != nil {
		return "", fmt.Errorf("redirect Location %q names no valid stream", redactString(location))
	}
	return newKey, nil
}

// Close stops on_done calls from being started and waits for those in flight until
// ctx ends, then cancels them.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	c.mu.Unlock()
	waited := make(chan struct{})
	go func() { c.done.Wait(); close(waited) }()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = fmt.Errorf("hooks: on_done calls still running: %w", context.Cause(ctx))
		c.cancelBg()
		<-waited
	}
	c.cancelBg()
	c.hc.CloseIdleConnections()
	return err
}

// redact drops the user info and query of a URL for logs and errors.
func redact(u *url.URL) string {
	r := *u
	r.User, r.RawQuery, r.ForceQuery = nil, "", false
	return r.String()
}

func redactString(s string) string {
	if u, err := url.Parse(s); err == nil {
		return redact(u)
	}
	return "(unparsable URL)"
}
