package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action is what a client asks to do with a stream.
type Action uint8

// Actions an AccessController decides on.
const (
	ActionPublish Action = iota + 1
	ActionPlay
	// ActionConnect is an RTMP connect, before any publish or play: the request's Key
	// is the app alone (no '/'), Query the tcUrl's query. A controller that only
	// cares about streams allows it; a rename (Key) names another app.
	ActionConnect
)

// String returns "publish", "play" or "connect".
func (a Action) String() string {
	switch a {
	case ActionPublish:
		return "publish"
	case ActionPlay:
		return "play"
	case ActionConnect:
		return "connect"
	}
	return "action?"
}

// AccessRequest describes a publish or play request for an access decision. Protocol
// layers fill it in; it names no wire format.
type AccessRequest struct {
	Action   Action
	Key      string // "app/stream", the query removed
	Query    string // the raw query given after '?' (e.g. "key=K"); never log it
	Protocol string // "rtmp", "rtmpt", "rtmps", "http-flv", ...
	Remote   string // client address
	TCURL    string // RTMP only: the connect's tcUrl, its query removed
	FlashVer string // RTMP connect only: the client's flashVer
}

// AccessDecision is an AccessController's answer.
type AccessDecision struct {
	// Allow lets the request go on. When false, Reason says why (sent to the client
	// and logged).
	Allow  bool
	Reason string
	// Key, when not empty, replaces the requested key (a hook renaming a stream so
	// viewers never see the publisher's stream key).
	Key string
	// Owner, for a publish, names who answers for it (e.g. the role owning the stream
	// key); protocol layers copy it into PublisherInfo.Owner.
	Owner string
	// OnEnd, for an allowed publish, is called once when that publish ends: protocol
	// layers copy it into PublisherInfo.OnClose, and call it themselves when the hub
	// refuses the publish after all (stream busy). It must not block.
	OnEnd func()
}

// ErrAccessDenied is wrapped by protocol layers when an AccessController refuses.
var ErrAccessDenied = errors.New("relay: access denied")

// AccessController decides who may publish and play what: stream keys in a database,
// HTTP hooks, or both. It is called once per request, from the requesting connection's
// goroutine, and may block up to ctx's deadline; an error refuses the request (a
// controller that wants to fail open returns Allow instead).
type AccessController interface {
	Authorize(ctx context.Context, req AccessRequest) (AccessDecision, error)
}

// AccessFunc adapts a function to AccessController.
type AccessFunc func(ctx context.Context, req AccessRequest) (AccessDecision, error)

// Authorize calls f.
func (f AccessFunc) Authorize(ctx context.Context, req AccessRequest) (AccessDecision, error) {
	return f(ctx, req)
}

// Decide asks ac (nil: allow everything) about req, within timeout (0: ctx alone),
// and returns the stream key to use: req.Key, or the key a controller renamed it to,
// checked with ValidateKey. A refusal, a failed decision or a bad rename is an error
// wrapping ErrAccessDenied whose text says why (the OnEnd of a badly renamed publish
// is called). It is the one decision path of the protocol layers for publish and
// play (RTMP and the HTTP viewers); for ActionConnect use Authorize directly, since
// its Key is no stream key.
func Decide(ctx context.Context, ac AccessController, timeout time.Duration, req AccessRequest) (string, AccessDecision, error) {
	if err := ValidateKey(req.Key); err != nil {
		return req.Key, AccessDecision{}, fmt.Errorf("%w: %w", ErrAccessDenied, err)
	}
	if ac == nil {
		return req.Key, AccessDecision{Allow: true}, nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d, err := ac.Authorize(ctx, req)
	switch {
	case err != nil:
		return req.Key, AccessDecision{}, fmt.Errorf("%w: %s %s: %w", ErrAccessDenied, req.Action, req.Key, err)
	case !d.Allow:
		return req.Key, AccessDecision{}, fmt.Errorf("%w: %s", ErrAccessDenied, d.Reason)
	case d.Key != "":
		if err := ValidateKey(d.Key); err != nil {
			if d.OnEnd != nil {
				d.OnEnd()
			}
			return req.Key, AccessDecision{}, fmt.Errorf("%w: renamed to a bad key: %w", ErrAccessDenied, err)
		}
		return d.Key, d, nil
	}
	return req.Key, d, nil
}

// DenialReason returns why Decide refused, without the ErrAccessDenied prefix: the
// short reason an HTTP viewer's 403 shows.
func DenialReason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrAccessDenied.Error()+": ")
}

// AllowAll is the AccessController used without a database or hooks: open publishing
// and playing.
var AllowAll AccessController = AccessFunc(func(context.Context, AccessRequest) (AccessDecision, error) {
	return AccessDecision{Allow: true}, nil
})

// AllOf returns an AccessController that allows a request only when every one of cs
// allows it (a stream-key database and HTTP hooks, say). It asks them in order and
// stops at the first refusal or error. Each controller sees the key as renamed by
// those before it, so the last rename wins; the first non-empty Owner is kept; the
// combined OnEnd calls every controller's OnEnd, in order. When a controller refuses
// after earlier ones allowed a publish, AllOf calls their OnEnd at once, since that
// publish never starts. Nil controllers are skipped.
func AllOf(cs ...AccessController) AccessController {
	return AccessFunc(func(ctx context.Context, req AccessRequest) (AccessDecision, error) {
		out := AccessDecision{Allow: true}
		var ends []func()
		endAll := func() {
			for _, f := range ends {
				f()
			}
		}
		for _, c := range cs {
			if c == nil {
				continue
			}
			d, err := c.Authorize(ctx, req)
			if d.Allow && d.OnEnd != nil {
				ends = append(ends, d.OnEnd)
			}
			if err != nil || !d.Allow {
				endAll()
				return AccessDecision{Reason: d.Reason}, err
			}
			if d.Key != "" {
				req.Key, out.Key = d.Key, d.Key
			}
			if out.Owner == "" {
				out.Owner = d.Owner
			}
		}
		if len(ends) > 0 {
			out.OnEnd = endAll
		}
		return out, nil
	})
}
