package relay_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
)

// TestAllOf checks the combinator's rules: every controller must allow, renames
// chain, the first Owner wins, OnEnd runs every controller's OnEnd, and a later
// refusal ends what earlier controllers allowed.
func TestAllOf(t *testing.T) {
	t.Parallel()
	type call struct{ name, key string }
	// ctl returns a controller that records the key it was asked about and answers d.
	newCtl := func(calls *[]call, name string, d relay.AccessDecision, err error, ended *[]string) relay.AccessController {
		return relay.AccessFunc(func(_ context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
			*calls = append(*calls, call{name, req.Key})
			if d.Allow {
				d.OnEnd = func() { *ended = append(*ended, name) }
			}
			return d, err
		})
	}
	errDown := errors.New("down")
	cases := []struct {
		name      string
		decisions []relay.AccessDecision
		errs      []error
		want      relay.AccessDecision // OnEnd not compared
		wantErr   error
		wantCalls []call
		wantEnded []string // OnEnds run during Authorize (refusals)
		wantEnd   []string // OnEnds run by the combined OnEnd
	}{
		{
			name:      "all allow",
			decisions: []relay.AccessDecision{{Allow: true, Owner: "alice"}, {Allow: true, Owner: "bob"}},
			want:      relay.AccessDecision{Allow: true, Owner: "alice"},
			wantCalls: []call{{"c0", "live/a"}, {"c1", "live/a"}},
			wantEnd:   []string{"c0", "c1"},
		},
		{
			name:      "rename chains",
			decisions: []relay.AccessDecision{{Allow: true, Key: "live/b"}, {Allow: true, Key: "live/c"}},
			want:      relay.AccessDecision{Allow: true, Key: "live/c"},
			wantCalls: []call{{"c0", "live/a"}, {"c1", "live/b"}},
			wantEnd:   []string{"c0", "c1"},
		},
		{
			name:      "later refusal ends earlier allow",
			decisions: []relay.AccessDecision{{Allow: true}, {Reason: "no"}, {Allow: true}},
			want:      relay.AccessDecision{Reason: "no"},
			wantCalls: []call{{"c0", "live/a"}, {"c1", "live/a"}},
			wantEnded: []string{"c0"},
		},
		{
			name:      "error stops",
			decisions: []relay.AccessDecision{{}, {Allow: true}},
			errs:      []error{errDown, nil},
			wantErr:   errDown,
			wantCalls: []call{{"c0", "live/a"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls []call
			var ended []string
			var cs []relay.AccessController
			for i, d := range tc.decisions {
				var err error
				if i < len(tc.errs) {
					err = tc.errs[i]
				}
				cs = append(cs, newCtl(&calls, "c"+string(rune('0'+i)), d, err, &ended))
			}
			cs = append(cs, nil) // skipped
			d, err := relay.AllOf(cs...).Authorize(t.Context(), relay.AccessRequest{Action: relay.ActionPublish, Key: "live/a"})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			onEnd := d.OnEnd
			d.OnEnd = nil
			if d.Allow != tc.want.Allow || d.Reason != tc.want.Reason || d.Key != tc.want.Key || d.Owner != tc.want.Owner {
				t.Errorf("decision = %+v, want %+v", d, tc.want)
			}
			if !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("calls = %v, want %v", calls, tc.wantCalls)
			}
			if !slices.Equal(ended, tc.wantEnded) {
				t.Errorf("ended during Authorize = %v, want %v", ended, tc.wantEnded)
			}
			if (onEnd != nil) != (len(tc.wantEnd) > 0) {
				t.Fatalf("OnEnd set = %v, want %v", onEnd != nil, len(tc.wantEnd) > 0)
			}
			if onEnd != nil {
				ended = nil
				onEnd()
				if !slices.Equal(ended, tc.wantEnd) {
					t.Errorf("OnEnd ran %v, want %v", ended, tc.wantEnd)
				}
			}
		})
	}
}
