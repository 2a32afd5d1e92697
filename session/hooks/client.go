package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
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

// Body formats of Config.Format.
const (
	// FormatForm posts application/x-www-form-urlencoded bodies, as nginx-rtmp does.
	FormatForm = "form"
	// FormatJSON posts application/json bodies (see the package doc).
	FormatJSON = "json"
)

// Config configures a Client. Empty URLs mean no hook for that event.
type Config struct {
	// OnConnect is POSTed on every RTMP connect, before its answer (call=connect).
	OnConnect string
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
	// Format is the body format: FormatForm (the default when empty) or FormatJSON.
	Format string
	// Transport sends the requests; nil means a clone of http.DefaultTransport.
	// Redirects are never followed: a 3xx is an answer. SetConfig keeps the
	// Transport given to New.
	Transport http.RoundTripper
}

// check validates c and fills in its defaults.
func (c *Config) check() error {
	for _, u := range []struct{ field, v string }{
		{"OnConnect", c.OnConnect}, {"OnPublish", c.OnPublish}, {"OnPlay", c.OnPlay}, {"OnDone", c.OnDone},
	} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil {
			return fmt.Errorf("hooks: %s: %w", u.field, stripURL(err))
		}
		if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("hooks: %s %q: want an absolute http:// or https:// URL", u.field, redact(p))
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("hooks: Timeout %s: must not be negative", c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch c.Format {
	case "":
		c.Format = FormatForm
	case FormatForm, FormatJSON:
	default:
		return fmt.Errorf("hooks: Format %q: want %s or %s", c.Format, FormatForm, FormatJSON)
	}
	return nil
}

// Client calls the hooks. It implements relay.AccessController.
type Client struct {
	cfg atomic.Pointer[Config] // never nil after New; replaced whole by SetConfig
	log zerolog.Logger         // immutable after New
	hc  *http.Client           // immutable after New

	bg       context.Context    // parent of on_done requests; cancelled by Close when its ctx ends
	cancelBg context.CancelFunc // immutable after New

	mu     sync.Mutex     // guards closed and the Add side of done
	closed bool           // guarded by mu
	done   sync.WaitGroup // on_done requests in flight
}

var _ relay.AccessController = (*Client)(nil)

// New validates cfg and returns a Client. Each URL must be absolute http or https;
// a Client without URLs allows everything (SetConfig may add URLs later).
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	bg, cancel := context.WithCancel(context.Background())
	c := &Client{
		log: log.With().Str("component", "hooks").Logger(),
		hc: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		bg:       bg,
		cancelBg: cancel,
	}
	c.cfg.Store(&cfg)
	return c, nil
}

// SetConfig replaces the URLs, Timeout, FailOpen and Format of a running Client (a
// live reload); cfg.Transport is ignored. A cfg that does not validate changes
// nothing. Decisions already in progress finish with the configuration they
// started with; an on_done of a publish allowed before goes to the URL in effect
// when that publish ends. Safe for concurrent use with Authorize.
func (c *Client) SetConfig(cfg Config) error {
	if err := cfg.check(); err != nil {
		return err
	}
	cfg.Transport = nil
	c.cfg.Store(&cfg)
	return nil
}

// Config returns the configuration in effect (without its Transport).
func (c *Client) Config() Config {
	cfg := *c.cfg.Load()
	cfg.Transport = nil
	return cfg
}

// Enabled reports whether any hook URL is configured.
func (c *Client) Enabled() bool {
	cfg := c.cfg.Load()
	return cfg.OnConnect != "" || cfg.OnPublish != "" || cfg.OnPlay != "" || cfg.OnDone != ""
}

// Authorize implements relay.AccessController: it POSTs the on_connect, on_publish
// or on_play hook (allowing when that hook is not configured) and turns the answer
// into a decision. For an allowed publish, the decision's OnEnd posts call=done to
// the OnDone URL in effect when the publish ends (nothing when there is none then).
func (c *Client) Authorize(ctx context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
	cfg := c.cfg.Load()
	var hook, call string
	switch req.Action {
	case relay.ActionConnect:
		hook, call = cfg.OnConnect, "connect"
	case relay.ActionPublish:
		hook, call = cfg.OnPublish, "publish"
	case relay.ActionPlay:
		hook, call = cfg.OnPlay, "play"
	default:
		return relay.AccessDecision{Allow: true}, nil
	}
	log := c.log.With().Str("stream", req.Key).Str("remote", req.Remote).Str("protocol", req.Protocol).
		Str("call", call).Logger()
	d := relay.AccessDecision{Allow: true}
	if hook != "" {
		var err error
		if d, err = c.decide(ctx, cfg, hook, call, req, log); err != nil {
			return d, err
		}
	}
	if d.Allow && req.Action == relay.ActionPublish {
		key := req.Key
		if d.Key != "" {
			key = d.Key
		}
		d.OnEnd = c.onDone(req, key, log)
	}
	return d, nil
}

// decide posts one hook and maps its answer to a decision.
func (c *Client) decide(ctx context.Context, cfg *Config, hook, call string, req relay.AccessRequest, log zerolog.Logger) (relay.AccessDecision, error) {
	start := time.Now()
	resp, err := c.post(ctx, cfg, hook, body(cfg.Format, call, req, req.Key))
	if err != nil {
		if ctx.Err() != nil {
			// The requester is gone (or its own deadline passed): nobody to answer.
			return relay.AccessDecision{}, fmt.Errorf("on_%s hook: %w", call, context.Cause(ctx))
		}
		why := err.Error()
		if errors.Is(err, ErrTimeout) {
			why = fmt.Sprintf("no answer within %s", cfg.Timeout)
		}
		if cfg.FailOpen {
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
		rename := renamed
		if req.Action == relay.ActionConnect {
			rename = renamedApp
		}
		key, err := rename(req.Key, resp.location)
		if err != nil {
			log.Warn().Err(err).Msg("hook redirect refused")
			return relay.AccessDecision{Reason: fmt.Sprintf("on_%s hook: %v", call, err)}, nil
		}
		log.Info().Str("renamed_to", key).Msg("hook renamed the stream")
		return relay.AccessDecision{Allow: true, Key: key}, nil
	case cfg.FailOpen && (resp.status == http.StatusBadGateway || resp.status == http.StatusServiceUnavailable || resp.status == http.StatusGatewayTimeout):
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
			cfg := c.cfg.Load()
			if cfg.OnDone == "" {
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.closed {
				log.Warn().Msg("on_done hook not called: hooks client closed")
				return
			}
			c.done.Go(func() {
				resp, err := c.post(c.bg, cfg, cfg.OnDone, body(cfg.Format, "done", req, key))
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

// payload is a request body and its Content-Type.
type payload struct {
	contentType string
	data        []byte
}

// post sends b to hook and returns the answer, within cfg.Timeout. An error wraps
// ErrTimeout when the time ran out.
func (c *Client) post(ctx context.Context, cfg *Config, hook string, b payload) (answer, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, ErrTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(b.data))
	if err != nil {
		return answer{}, stripURL(err)
	}
	hreq.Header.Set("Content-Type", b.contentType)
	hreq.Header.Set("User-Agent", "mtrelay-hooks")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return answer{}, fmt.Errorf("post %s: %w", redactString(hook), ErrTimeout)
		}
		return answer{}, fmt.Errorf("post %s: %w", redactString(hook), stripURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return answer{status: resp.StatusCode, location: resp.Header.Get("Location")}, nil
}

// stripURL unwraps a *url.Error, whose text repeats the URL and with it any
// credentials in it.
func stripURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// body builds the request body of call in format (FormatForm or FormatJSON).
func body(format, call string, req relay.AccessRequest, key string) payload {
	if format == FormatJSON {
		return payload{"application/json", jsonBody(call, req, key)}
	}
	return payload{"application/x-www-form-urlencoded", []byte(form(call, req, key).Encode())}
}

// fields are the named fields of a hook body.
type fields struct {
	Call     string `json:"call"`
	App      string `json:"app"`
	Name     string `json:"name"`
	NewName  string `json:"new_name,omitempty"`
	Addr     string `json:"addr"`
	Protocol string `json:"protocol"`
	TCURL    string `json:"tcurl"`
	FlashVer string `json:"flashver,omitempty"`
	// Args are the query parameters: a string each, a list of strings for a
	// parameter given more than once. Always an object, {} when there are none.
	Args map[string]any `json:"args"`
}

// reserved are the form fields a query parameter may not shadow.
var reserved = map[string]bool{"call": true, "app": true, "name": true, "new_name": true, "addr": true,
	"protocol": true, "tcurl": true, "flashver": true, "args": true}

// namedFields fills in fields from req. key is the stream as published after
// renames; when it differs from the request, its name is NewName (only on call=done).
// For a connect, App is the app and Name is empty.
func namedFields(call string, req relay.AccessRequest, key string) fields {
	app, name, _ := strings.Cut(req.Key, "/")
	addr := req.Remote
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	f := fields{Call: call, App: app, Name: name, Addr: addr, Protocol: req.Protocol, TCURL: req.TCURL}
	if call == "connect" {
		f.FlashVer = req.FlashVer
	}
	if key != req.Key {
		_, f.NewName, _ = strings.Cut(key, "/")
	}
	return f
}

// form builds the nginx-rtmp style body: call, app, name, addr (the client's IP),
// protocol and args (the raw query), tcurl and flashver when known, new_name after a
// rename (only on call=done), then every query parameter as its own field (key=K
// arrives as key), except those that would shadow a field above.
func form(call string, req relay.AccessRequest, key string) url.Values {
	f := namedFields(call, req, key)
	v := url.Values{
		"call":     {f.Call},
		"app":      {f.App},
		"name":     {f.Name},
		"addr":     {f.Addr},
		"protocol": {f.Protocol},
		"args":     {req.Query},
	}
	for k, s := range map[string]string{"new_name": f.NewName, "tcurl": f.TCURL, "flashver": f.FlashVer} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q, err := url.ParseQuery(req.Query); err == nil {
		for k, vs := range q {
			if !reserved[k] {
				v[k] = vs
			}
		}
	}
	return v
}

// jsonBody builds the JSON body: the fields of form, with args as an object of the
// query parameters instead of the raw query.
func jsonBody(call string, req relay.AccessRequest, key string) []byte {
	f := namedFields(call, req, key)
	f.Args = map[string]any{}
	q, _ := url.ParseQuery(req.Query) // what parses is kept
	for k, vs := range q {
		if len(vs) == 1 {
			f.Args[k] = vs[0]
		} else {
			f.Args[k] = vs
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		// Strings, and maps of strings and string lists: cannot fail.
		panic(err)
	}
	return b
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

// renamedApp returns the app a 3xx answer to a connect renames app to: the last path
// element of location.
func renamedApp(app, location string) (string, error) {
	key, err := renamed(app+"/x", location)
	if err != nil {
		return "", err
	}
	_, name, _ := strings.Cut(key, "/")
	return name, nil
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
