package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// TestDecide checks the decision path of protocol layers without connection state:
// nil allows, refusals and errors wrap ErrAccessDenied with the reason, a valid
// rename is returned, a bad one is refused (and its OnEnd called), a bad requested
// key never reaches the controller, and the timeout bounds the controller.
func TestDecide(t *testing.T) {
	t.Parallel()
	errDown := errors.New("hook server down")
	cases := []struct {
		name    string
		ac      relay.AccessController // nil: Decide's nil
		key     string
		wantKey string
		wantErr string // substring; "" = allowed
		wantEnd bool   // the decision's OnEnd was called by Decide
	}{
		{name: "nil allows", key: "live/a", wantKey: "live/a"},
		{name: "allow", ac: answer(relay.AccessDecision{Allow: true}, nil), key: "live/a", wantKey: "live/a"},
		{name: "refusal", ac: answer(relay.AccessDecision{Reason: "no token"}, nil), key: "live/a", wantKey: "live/a", wantErr: "access denied: no token"},
		{name: "error", ac: answer(relay.AccessDecision{}, errDown), key: "live/a", wantKey: "live/a", wantErr: "play live/a: hook server down"},
		{name: "rename", ac: answer(relay.AccessDecision{Allow: true, Key: "live/b"}, nil), key: "live/a", wantKey: "live/b"},
		{name: "bad rename", ac: answer(relay.AccessDecision{Allow: true, Key: "live/../x"}, nil), key: "live/a", wantKey: "live/a", wantErr: "renamed to a bad key", wantEnd: true},
		{name: "bad key", ac: answer(relay.AccessDecision{Allow: true}, nil), key: "live/..", wantKey: "live/..", wantErr: "access denied"},
		{name: "timeout", ac: relay.AccessFunc(func(ctx context.Context, _ relay.AccessRequest) (relay.AccessDecision, error) {
			<-ctx.Done()
			return relay.AccessDecision{}, ctx.Err()
		}), key: "live/a", wantKey: "live/a", wantErr: "deadline exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ac, ended := tc.ac, false
			if ac != nil {
				inner := ac
				ac = relay.AccessFunc(func(ctx context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
					d, err := inner.Authorize(ctx, req)
					if d.Allow {
						d.OnEnd = func() { ended = true }
					}
					return d, err
				})
			}
			key, _, err := relay.Decide(t.Context(), ac, 50*time.Millisecond,
				relay.AccessRequest{Action: relay.ActionPlay, Key: tc.key, Protocol: "http-flv"})
			if key != tc.wantKey {
				t.Errorf("key = %q, want %q", key, tc.wantKey)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v, want allowed", err)
			case tc.wantErr != "" && (!errors.Is(err, relay.ErrAccessDenied) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want ErrAccessDenied with %q", err, tc.wantErr)
			}
			if ended != tc.wantEnd {
				t.Errorf("OnEnd called = %v, want %v", ended, tc.wantEnd)
			}
		})
	}
	if got := relay.ActionConnect.String(); got != "connect" {
		t.Errorf("ActionConnect.String() = %q", got)
	}
}

func answer(d relay.AccessDecision, err error) relay.AccessController {
	return relay.AccessFunc(func(context.Context, relay.AccessRequest) (relay.AccessDecision, error) { return d, err })
}
