package main

// Allowed publishers and players by client address (--allow-publish, --allow-play):
// nginx-rtmp's "allow publish 127.0.0.1; deny publish all" as two comma lists of
// CIDRs and IPs. An empty list allows everyone. The lists are an AccessController
// asked before the stream keys and the hooks (run.go composes them), and a reload
// swaps them atomically: the next publish or play is judged by the new lists,
// running ones are left alone.

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// allowConfig is the allow-list part of Config (embedded there).
type allowConfig struct {
	AllowPublish string // comma list of CIDRs/IPs that may publish; empty: everyone
	AllowPlay    string // comma list of CIDRs/IPs that may play; empty: everyone
}

// addAllowFlags declares the allow-list flags on fs.
func addAllowFlags(fs *flag.FlagSet, c *allowConfig) {
	fs.StringVar(&c.AllowPublish, "allow-publish", "", "client addresses that may publish: comma list of CIDRs and IPs, e.g. 127.0.0.1,10.0.0.0/8 (empty: everyone); others get NetStream.Publish.Unauthorized")
	fs.StringVar(&c.AllowPlay, "allow-play", "", "client addresses that may play (RTMP, RTMPT, RTMPS, HTTP-FLV, HLS, the player page and /vod files): comma list of CIDRs and IPs (empty: everyone)")
}

// validateAllow checks the allow-list flags.
func (c *allowConfig) validateAllow() error {
	if _, err := parseAllowList(c.AllowPublish); err != nil {
		return fmt.Errorf("--allow-publish: %w", err)
	}
	if _, err := parseAllowList(c.AllowPlay); err != nil {
		return fmt.Errorf("--allow-play: %w", err)
	}
	return nil
}

// allowList is a set of address prefixes; nil allows every address.
type allowList []netip.Prefix

// parseAllowList parses "10.0.0.0/8, 127.0.0.1, ::1": CIDRs and single addresses
// (a /32 or /128). Blank entries are skipped; an empty list is nil.
func parseAllowList(s string) (allowList, error) {
	var out allowList
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q: not a CIDR: %w", f, err)
			}
			if p.Addr().Is4In6() {
				if p.Bits() < 96 {
					return nil, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96", f)
				}
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q: not an IP address or CIDR: %w", f, err)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("%q: zones are not supported", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// String returns the list as the flag would give it.
func (l allowList) String() string {
	s := make([]string, len(l))
	for i, p := range l {
		s[i] = p.String()
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		}
	}
	return strings.Join(s, ",")
}

// allows reports whether remote, a client address as "ip:port" or "ip", is in the
// list. An empty list allows everyone; an address that does not parse is in no list.
func (l allowList) allows(remote string) bool {
	if len(l) == 0 {
		return true
	}
	a, ok := remoteIP(remote)
	if !ok {
		return false
	}
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteIP returns the IP of a client address ("1.2.3.4:5", "[::1]:5", "1.2.3.4"),
// IPv4-mapped IPv6 unmapped and without zone.
func remoteIP(remote string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// allowRules are the two lists in effect; replaced whole by set.
type allowRules struct {
	publish, play allowList
}

// allowControl is the relay.AccessController of the allow lists.
type allowControl struct {
	log    zerolog.Logger             // component=access
	rules  atomic.Pointer[allowRules] // never nil after newAllowControl
	counts accessCounts               // decisions of chain
}

var _ relay.AccessController = (*allowControl)(nil)

// newAllowControl returns the controller for c's lists. They were validated with the
// Config; a list that does not parse all the same refuses everyone (fail closed) and
// is logged.
func newAllowControl(c allowConfig, log zerolog.Logger) *allowControl {
	a := &allowControl{log: log.With().Str("component", "access").Logger()}
	if err := a.set(c); err != nil {
		a.log.Error().Err(err).Msg("allow lists do not parse: every publish and play is refused")
		a.rules.Store(&allowRules{publish: denyAll, play: denyAll})
	}
	if r := a.rules.Load(); r.publish != nil || r.play != nil {
		a.log.Info().Str("allow_publish", r.publish.String()).Str("allow_play", r.play.String()).Msg("allow lists on")
	}
	return a
}

// denyAll is a list that no address is in: the zero Prefix contains nothing.
var denyAll = allowList{netip.Prefix{}}

// set replaces both lists at once (a reload); on error the old ones stay.
func (a *allowControl) set(c allowConfig) error {
	if err := c.validateAllow(); err != nil {
		return err
	}
	pub, _ := parseAllowList(c.AllowPublish)
	play, _ := parseAllowList(c.AllowPlay)
	a.rules.Store(&allowRules{publish: pub, play: play})
	return nil
}

// Authorize refuses a publish or play from an address outside its list; connects
// and everything else pass (the lists are about streams).
func (a *allowControl) Authorize(_ context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
	r := a.rules.Load()
	var l allowList
	switch req.Action {
	case relay.ActionPublish:
		l = r.publish
	case relay.ActionPlay:
		l = r.play
	}
	if l.allows(req.Remote) {
		return relay.AccessDecision{Allow: true}, nil
	}
	a.log.Warn().Str("action", req.Action.String()).Str("stream", req.Key).Str("protocol", req.Protocol).
		Str("remote", req.Remote).Msg("refused: address not in the allow list")
	return relay.AccessDecision{Reason: req.Action.String() + " not allowed from this address"}, nil
}

// Access decision results, the labels of the decision metric, in index order.
var accessResults = [...]string{
	iAllowed:   "allowed",
	iRefused:   "refused",    // a controller said no: allow list, stream key, hook
	iAllowList: "allow_list", // the allow lists said no (counted in refused too)
	iFailed:    "error",      // no decision: database or hook unreachable, timeout
}

const (
	iAllowed = iota
	iRefused
	iAllowList
	iFailed
	accessResultsN
	accessActionsN = 4 // relay.Action values 0..3 (0: unknown)
)

// accessCounts count access decisions by action and result, for the metrics.
type accessCounts [accessActionsN][accessResultsN]atomic.Int64

func (c *accessCounts) add(a relay.Action, result int) {
	if int(a) >= accessActionsN {
		a = 0
	}
	c[a][result].Add(1)
}

// chain returns the relay's access controller: the allow lists first, then next
// (stream keys and hooks), every decision counted by action and result.
func (a *allowControl) chain(next relay.AccessController) relay.AccessController {
	return relay.AccessFunc(func(ctx context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
		if d, _ := a.Authorize(ctx, req); !d.Allow {
			a.counts.add(req.Action, iRefused)
			a.counts.add(req.Action, iAllowList)
			return d, nil
		}
		d, err := next.Authorize(ctx, req)
		switch {
		case err != nil:
			a.counts.add(req.Action, iFailed)
		case !d.Allow:
			a.counts.add(req.Action, iRefused)
		default:
			a.counts.add(req.Action, iAllowed)
		}
		return d, err
	})
}

// decisions returns the counts by action name and result.
func (a *allowControl) decisions() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for _, act := range []relay.Action{relay.ActionConnect, relay.ActionPublish, relay.ActionPlay} {
		m := make(map[string]int64, accessResultsN)
		for i, r := range accessResults {
			m[r] = a.counts[act][i].Load()
		}
		out[act.String()] = m
	}
	return out
}
