package main

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestMetricsSessionsAndKick runs a relay against the private PostgreSQL: logins that
// succeed, fail and hit the rate limit are counted by result, the live session shows
// as an HTTP session; a keyed publisher feeds an RTMP player, an RTMPT player, an
// HTTP-FLV viewer and a page viewer; its owner kicks it, and every one of them ends
// counted as kicked under its protocol, the publisher's connection too.
func TestMetricsSessionsAndKick(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t, func(c *Config) {
		c.PlayWait = time.Second // the players left behind by the kick give up soon
		c.LoginFailuresPerUser = 2
	})
	alice := r.db.CreateRole(t, "alice", "alicepw", "mtrelay_user")
	ca := r.login(t, alice, "alicepw")
	bad := func() int {
		c := &apiClient{t: t, base: "http://" + r.httpAddr, hc: &http.Client{Timeout: 30 * time.Second}}
		code, _ := c.do("POST", "/api/login", map[string]string{"username": alice, "password": "wrong"})
		return code
	}
	for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
		if code := bad(); code != want {
			t.Fatalf("bad login %d: %d, want %d", i+1, code, want)
		}
	}
	m := r.waitMetrics(t, "the login counters", func(m map[string]float64) bool {
		return m[`mtrelay_logins_total{result="ok"}`] == 1 && m[`mtrelay_logins_total{result="failed"}`] == 2 &&
			m[`mtrelay_logins_total{result="limited"}`] == 1
	})
	for s, want := range map[string]float64{
		`mtrelay_http_sessions{kind="login"}`:                               1,
		`mtrelay_logins_total{result="unavailable"}`:                        0,
		`mtrelay_database_errors_total`:                                     0,
		`mtrelay_access_decisions_total{action="publish",result="allowed"}`: 0,
	} {
		if got, ok := m[s]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, want)
		}
	}
	if _, ok := m[`mtrelay_http_sessions{kind="anonymous"}`]; !ok {
		t.Error("no series for anonymous HTTP sessions")
	}

	const key = "live/cam"
	k := ca.createKey("live", "cam")
	pub, err := goPublish(t, r.testRelay, "live", "cam?key="+k.Key)
	if err != nil {
		t.Fatalf("keyed publish: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sent := goSend(t, ctx, pub, loopTags(fixtureTags(t), 4), 0, newPacer(1, 0))
	rtmpPl, tunnelPl := r.player(t, "rtmp", key), r.player(t, "rtmpt", key)
	reads := []<-chan readResult{goRead(t, ctx, rtmpPl, nil), goRead(t, ctx, tunnelPl, nil)}
	flv := readProgress(t, getBody(t, "http://"+r.httpAddr+"/"+key+".flv"))
	page := readProgress(t, getBody(t, "http://"+r.httpAddr+"/play/"+key+"/live.mp4"))
	r.waitMetrics(t, "the four subscribers", func(m map[string]float64) bool {
		return m[`mtrelay_subscribers{protocol="rtmp"}`] == 1 && m[`mtrelay_subscribers{protocol="rtmpt"}`] == 1 &&
			m[`mtrelay_subscribers{protocol="http-flv"}`] == 1 && m[`mtrelay_subscribers{protocol="page"}`] == 1
	})
	waitFor(t, 15*time.Second, "media to the browser viewers", func() bool { return flv.bytes.Load() > 0 && page.bytes.Load() > 0 })

	if code, b := ca.do("POST", "/api/streams/"+key+"/kick", nil); code != http.StatusNoContent {
		t.Fatalf("kick: %d %s", code, b)
	}
	<-sent // the publisher's connection was closed
	end := r.waitMetrics(t, "every subscriber counted as kicked", func(m map[string]float64) bool {
		return m[`mtrelay_rtmp_disconnects_total{reason="kicked"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="rtmp",reason="kicked"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="rtmpt",reason="kicked"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="http-flv",reason="kicked"}`] == 1 &&
			m[`mtrelay_subscribers_disconnected_total{protocol="page",reason="kicked"}`] == 1
	})
	for _, read := range reads {
		<-read
	}
	for _, proto := range []string{"rtmp", "rtmpt", "http-flv", "page"} {
		for _, reason := range []string{"no_publisher", "client_closed", "slow", "timeout"} {
			if n := end[`mtrelay_subscribers_disconnected_total{protocol="`+proto+`",reason="`+reason+`"}`]; n != 0 {
				t.Errorf("%s subscribers disconnected as %s: %v, want 0 (they were kicked)", proto, reason, n)
			}
		}
	}
	if got := end[`mtrelay_access_decisions_total{action="publish",result="allowed"}`]; got != 1 {
		t.Errorf("allowed publish decisions: %v, want 1", got)
	}
}
