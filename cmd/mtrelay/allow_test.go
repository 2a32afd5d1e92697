package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// TestAllowList checks the --allow-publish/--allow-play matcher: CIDRs, single
// addresses, IPv4-mapped IPv6, remotes with and without a port, and bad lists.
func TestAllowList(t *testing.T) {
	cases := []struct {
		name, list string
		allowed    []string // remotes in the list
		refused    []string // remotes not in it
		err        string   // a parse error containing this
	}{
		{name: "empty allows all", list: "", allowed: []string{"127.0.0.1:1", "[::1]:2", "garbage"}},
		{name: "blanks only", list: " , ,", allowed: []string{"10.1.2.3:4"}},
		{name: "cidr", list: "10.0.0.0/8", allowed: []string{"10.1.2.3:1935", "10.255.255.255"}, refused: []string{"127.0.0.1:5", "11.0.0.1:1", "[::1]:5"}},
		{name: "single and cidr", list: "127.0.0.1, 192.168.0.0/16", allowed: []string{"127.0.0.1:5", "192.168.4.4:1", "[::ffff:127.0.0.1]:9"}, refused: []string{"127.0.0.2:5", "192.169.0.1:1"}},
		{name: "unmasked cidr", list: "10.1.2.3/8", allowed: []string{"10.9.9.9:1"}},
		{name: "ipv6", list: "::1,2001:db8::/32", allowed: []string{"[::1]:1935", "[2001:db8::5]:1", "[::1%lo]:4"}, refused: []string{"127.0.0.1:1", "[2001:db9::1]:1"}},
		{name: "4in6 prefix", list: "::ffff:10.0.0.0/104", allowed: []string{"10.3.3.3:1"}, refused: []string{"11.0.0.1:1"}},
		{name: "unparsable remote", list: "0.0.0.0/0", allowed: []string{"1.2.3.4:5"}, refused: []string{"", "pipe", "1.2.3:4"}},
		{name: "bad address", list: "10.0.0.1,localhost", err: `"localhost"`},
		{name: "bad cidr", list: "10.0.0.0/33", err: "not a CIDR"},
		{name: "short 4in6", list: "::ffff:0:0/80", err: "IPv4-mapped"},
		{name: "zone", list: "fe80::1%eth0", err: "zones"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := parseAllowList(c.list)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("parse %q: %v, want an error with %q", c.list, err, c.err)
				}
				cfg := allowConfig{AllowPlay: c.list}
				if err := cfg.validateAllow(); err == nil || !strings.Contains(err.Error(), "--allow-play") {
					t.Errorf("validate: %v, want an error naming --allow-play", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse %q: %v", c.list, err)
			}
			for _, r := range c.allowed {
				if !l.allows(r) {
					t.Errorf("%q not allowed by %q (%v)", r, c.list, l)
				}
			}
			for _, r := range c.refused {
				if l.allows(r) {
					t.Errorf("%q allowed by %q (%v)", r, c.list, l)
				}
			}
		})
	}
}

// TestAllowControl checks the controller: actions map to their list, connects pass,
// a swap applies to the next decision, bad lists at start fail closed, and the chain
// counts decisions.
func TestAllowControl(t *testing.T) {
	a := newAllowControl(allowConfig{AllowPublish: "10.0.0.0/8"}, zerolog.New(zerolog.NewTestWriter(t)))
	refuse := relay.AccessFunc(func(context.Context, relay.AccessRequest) (relay.AccessDecision, error) {
		return relay.AccessDecision{Reason: "no key"}, nil
	})
	chain := a.chain(relay.AllOf(relay.AllowAll))
	ask := func(ac relay.AccessController, act relay.Action, remote string) bool {
		d, err := ac.Authorize(t.Context(), relay.AccessRequest{Action: act, Key: "live/x", Remote: remote})
		return err == nil && d.Allow
	}
	if ask(chain, relay.ActionPublish, "127.0.0.1:5") || !ask(chain, relay.ActionPublish, "10.0.0.7:5") {
		t.Error("publish list not applied")
	}
	if !ask(chain, relay.ActionPlay, "127.0.0.1:5") || !ask(chain, relay.ActionConnect, "127.0.0.1:5") {
		t.Error("play or connect refused with an empty play list")
	}
	if err := a.set(allowConfig{AllowPublish: "127.0.0.1", AllowPlay: "::1"}); err != nil {
		t.Fatal(err)
	}
	if !ask(chain, relay.ActionPublish, "127.0.0.1:5") || ask(chain, relay.ActionPlay, "127.0.0.1:5") {
		t.Error("the swapped lists do not apply to the next decision")
	}
	if err := a.set(allowConfig{AllowPublish: "nonsense"}); err == nil {
		t.Error("set with a bad list: no error")
	}
	if !ask(chain, relay.ActionPublish, "127.0.0.1:5") {
		t.Error("a refused set changed the lists")
	}
	if ask(a.chain(refuse), relay.ActionPublish, "127.0.0.1:5") {
		t.Error("the chain allowed what the next controller refused")
	}
	d := a.decisions()
	if d["publish"]["allowed"] != 3 || d["publish"]["refused"] != 2 || d["publish"]["allow_list"] != 1 ||
		d["play"]["allowed"] != 1 || d["play"]["allow_list"] != 1 || d["connect"]["allowed"] != 1 {
		t.Errorf("decisions %v", d)
	}

	closed := newAllowControl(allowConfig{AllowPlay: "bad"}, zerolog.Nop())
	if d, _ := closed.Authorize(t.Context(), relay.AccessRequest{Action: relay.ActionPublish, Remote: "127.0.0.1:1"}); d.Allow {
		t.Error("a list that does not parse at start allowed a publish; want fail closed")
	}
	if denyAll.allows("0.0.0.0:0") || denyAll.allows("10.0.0.1") {
		t.Error("denyAll allows an address")
	}
}

// TestAllowPublishReload: with --allow-publish and --allow-play 10.0.0.0/8, a
// publish from 127.0.0.1 is refused (NetStream.Publish.Unauthorized, a log line), a
// play too (NetStream.Play.Failed; HTTP-FLV 403); a SIGHUP reload that adds
// 127.0.0.1 lets the next publish and plays in, over RTMP and RTMPT.
func TestAllowPublishReload(t *testing.T) {
	t.Parallel()
	rr := startReloadRelay(t, "allow-publish: 10.0.0.0/8\nallow-play: 10.0.0.0/8\n", false)
	transports := []string{"rtmp", "rtmpt"}
	for _, transport := range transports {
		c := rr.connect(t, transport, "live")
		wantStatus(t, c.Publish("denied-"+transport), "NetStream.Publish.Unauthorized", "publish not allowed from this address")
	}
	if l := rr.logs.find(func(m map[string]any) bool {
		return m["message"] == "refused: address not in the allow list" && m["action"] == "publish"
	}); len(l) != 2 {
		t.Errorf("%d refusal log lines, want 2 (rtmp, rtmpt)", len(l))
	}
	pl := rr.connect(t, "rtmp", "live")
	wantStatus(t, pl.Play("any"), "NetStream.Play.Failed", "play not allowed from this address")
	resp, err := http.Get("http://" + rr.httpAddr + "/live/any.flv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("HTTP-FLV play from outside --allow-play: %s, want 403", resp.Status)
	}

	rr.reload(t, "allow-publish: 10.0.0.0/8, 127.0.0.1\nallow-play: 127.0.0.0/8\n")
	for _, key := range []string{"allow-publish", "allow-play"} {
		if l := rr.changeLines(key); len(l) != 1 || l[0]["applied"] != true {
			t.Errorf("%s change: log lines %v, want one, applied", key, l)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, transport := range transports {
		key := "live/allowed-" + transport
		pub := rr.publisher(t, transport, key)
		pl := rr.player(t, transport, key)
		read := goRead(t, ctx, pl, nil)
		if err := publishAll(ctx, pub, fixtureTags(t)[:50], 0, newPacer(20, 0)); err != nil {
			t.Fatal(err)
		}
		wantUnpublished(t, transport+" player", <-read)
	}
	m := rr.metrics(t)
	if m[`mtrelay_access_decisions_total{action="publish",result="allow_list"}`] != 2 ||
		m[`mtrelay_access_decisions_total{action="publish",result="allowed"}`] != 2 ||
		m[`mtrelay_access_decisions_total{action="play",result="allow_list"}`] != 2 {
		t.Errorf("access decision metrics: %v publish and %v play allow_list refusals, %v allowed publishes; want 2, 2 and 2",
			m[`mtrelay_access_decisions_total{action="publish",result="allow_list"}`],
			m[`mtrelay_access_decisions_total{action="play",result="allow_list"}`],
			m[`mtrelay_access_decisions_total{action="publish",result="allowed"}`])
	}
}

// FuzzParseAllowList: whatever the list, parsing never panics, and a list that parses
// prints (String) to one that parses to the same prefixes and matches the same
// remotes.
func FuzzParseAllowList(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "127.0.0.1, 192.168.0.0/16", "::1,2001:db8::/32",
		"::ffff:10.0.0.0/104", "10.1.2.3/8", "fe80::1%eth0", "a,,b", "0.0.0.0/0"} {
		f.Add(s, "10.1.2.3:1935")
	}
	f.Fuzz(func(t *testing.T, list, remote string) {
		l, err := parseAllowList(list)
		if err != nil {
			return
		}
		again, err := parseAllowList(l.String())
		if err != nil {
			t.Fatalf("%q parsed to %q, which does not parse: %v", list, l.String(), err)
		}
		if len(again) != len(l) {
			t.Fatalf("%q → %q → %v: %d prefixes, want %d", list, l.String(), again, len(again), len(l))
		}
		for i := range l {
			if again[i] != l[i] {
				t.Fatalf("%q: prefix %d %v printed and parsed as %v", list, i, l[i], again[i])
			}
		}
		if l.allows(remote) != again.allows(remote) {
			t.Fatalf("%q and its printed form disagree on %q", list, remote)
		}
	})
}
