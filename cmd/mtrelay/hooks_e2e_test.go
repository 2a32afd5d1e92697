package main

// End-to-end tests of the HTTP hooks (--on-connect, --on-publish, --on-play,
// --on-done): the relay against a real hook server on 127.0.0.1, with rtmptest's Go
// client over RTMP and RTMPT, ffmpeg as publisher, and plain HTTP clients as HTTP-FLV,
// HLS and player-page viewers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// hookRecorder is a hook server: it records every body (a form, or a JSON object
// turned into a form: its string fields, and args' entries as fields of their own)
// and answers by app (connects) or stream name: "deny…" gets 403, "hang…" waits for
// the client to give up, "secret-X" is renamed to "public-X" by a 302, "tok…" gets
// 200 only with token=good, everything else gets 200.
type hookRecorder struct {
	srv *httptest.Server

	mu    sync.Mutex
	forms []url.Values     // guarded by mu
	jsons []map[string]any // guarded by mu: the JSON bodies as received
}

func newHookRecorder(t *testing.T) *hookRecorder {
	t.Helper()
	h := &hookRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var form url.Values
		if r.Header.Get("Content-Type") == "application/json" {
			var m map[string]any
			if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			form = url.Values{}
			for k, v := range m {
				if s, ok := v.(string); ok {
					form.Set(k, s)
				}
			}
			if args, ok := m["args"].(map[string]any); ok {
				for k, v := range args {
					if s, ok := v.(string); ok && !form.Has(k) {
						form.Set(k, s)
					}
				}
			}
			h.mu.Lock()
			h.jsons = append(h.jsons, m)
			h.mu.Unlock()
		} else {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			form = r.PostForm
		}
		h.mu.Lock()
		h.forms = append(h.forms, form)
		h.mu.Unlock()
		name := form.Get("name")
		if form.Get("call") == "connect" {
			name = form.Get("app")
		}
		switch {
		case form.Get("call") == "done":
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(name, "tok") && form.Get("token") != "good":
			http.Error(w, "bad token", http.StatusForbidden)
		case strings.HasPrefix(name, "deny"):
			http.Error(w, "no", http.StatusForbidden)
		case strings.HasPrefix(name, "hang"):
			<-r.Context().Done()
		case strings.HasPrefix(name, "secret-"):
			w.Header().Set("Location", "rtmp://example.invalid/live/public-"+strings.TrimPrefix(name, "secret-"))
			w.WriteHeader(http.StatusFound)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// find returns the forms with call and name (for connects: app).
func (h *hookRecorder) find(call, name string) []url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []url.Values
	for _, f := range h.forms {
		n := f.Get("name")
		if call == "connect" {
			n = f.Get("app")
		}
		if f.Get("call") == call && n == name {
			out = append(out, f)
		}
	}
	return out
}

// findProtocol returns the forms with call, name and protocol.
func (h *hookRecorder) findProtocol(call, name, protocol string) []url.Values {
	var out []url.Values
	for _, f := range h.find(call, name) {
		if f.Get("protocol") == protocol {
			out = append(out, f)
		}
	}
	return out
}

// hookRelayConfig points the four hooks of c at h.
func hookRelayConfig(h *hookRecorder) func(*Config) {
	return func(c *Config) {
		c.OnConnect = h.srv.URL + "/on_connect"
		c.OnPublish = h.srv.URL + "/on_publish"
		c.OnPlay = h.srv.URL + "/on_play"
		c.OnDone = h.srv.URL + "/on_done"
	}
}

// startHookRelay runs a relay whose four hooks point at a new hookRecorder.
func startHookRelay(t *testing.T, mutate ...func(*Config)) (*testRelay, *hookRecorder) {
	t.Helper()
	h := newHookRecorder(t)
	return startRelay(t, append([]func(*Config){hookRelayConfig(h)}, mutate...)...), h
}

// wantStatus fails unless err is a refusal with code whose description contains desc.
func wantStatus(t *testing.T, err error, code, desc string) {
	t.Helper()
	se, ok := errors.AsType[*rtmptest.StatusError](err)
	if !ok || se.Code != code || !strings.Contains(se.Description, desc) {
		t.Fatalf("got %v, want %s with %q", err, code, desc)
	}
}

// TestHooks: allowed, refused and renamed publishes and plays, and on_done with the
// right fields, over RTMP and RTMPT.
func TestHooks(t *testing.T) {
	t.Parallel()
	r, h := startHookRelay(t)
	forEachTransport(t, func(t *testing.T, transport string) {
		t.Run("deny publish", func(t *testing.T) {
			c := r.connect(t, transport, "live")
			wantStatus(t, c.Publish("deny-"+transport+"?key=K"), "NetStream.Publish.Unauthorized", "on_publish hook answered 403 Forbidden")
			if f := h.find("publish", "deny-"+transport); len(f) != 1 || f[0].Get("key") != "K" || f[0].Get("app") != "live" {
				t.Errorf("on_publish forms %v, want one with app=live key=K", f)
			}
			if _, ok := r.stream(t, "live/deny-"+transport); ok {
				t.Error("a refused publish is in /api/streams")
			}
		})
		t.Run("deny play", func(t *testing.T) {
			c := r.connect(t, transport, "live")
			wantStatus(t, c.Play("deny-play-"+transport), "NetStream.Play.Failed", "on_play hook answered 403")
		})
		t.Run("rename", func(t *testing.T) {
			secret, public := "secret-"+transport, "public-"+transport
			pub := r.publisher(t, transport, "live/"+secret+"?key=K")
			tags := fixtureTags(t)[:40]
			for _, tg := range tags {
				if err := pub.WriteMedia(tg.TypeID, tg.Timestamp, tg.Payload); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "the renamed stream in /api/streams", func() bool {
				_, ok := r.stream(t, "live/"+public)
				return ok
			})
			if _, ok := r.stream(t, "live/"+secret); ok {
				t.Errorf("the publisher's key live/%s is in /api/streams", secret)
			}
			pl := r.player(t, transport, "live/"+public)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			got, se, err := readUntilStatus(ctx, pl, func(m rxMsg) bool { return isVideoFrame(m.typeID, m.payload) })
			if err != nil || se != nil {
				t.Fatalf("player of the new name: got %d messages, then %v %v", len(got), se, err)
			}
			if f := h.find("play", public); len(f) != 1 {
				t.Errorf("on_play forms %v, want one for %s", f, public)
			}
			if len(h.find("done", secret)) != 0 {
				t.Fatal("on_done before the publish ended")
			}
			pub.Close()
			waitFor(t, 10*time.Second, "on_done", func() bool { return len(h.find("done", secret)) > 0 })
			f := h.find("done", secret)
			want := url.Values{"call": {"done"}, "app": {"live"}, "name": {secret}, "new_name": {public},
				"addr": {"127.0.0.1"}, "protocol": {transport}, "args": {"key=K"}, "key": {"K"},
				"tcurl": {r.url(transport, "live")}}
			if len(f) != 1 || f[0].Encode() != want.Encode() {
				t.Errorf("on_done forms %v, want one %v", f, want)
			}
		})
		t.Run("allow", func(t *testing.T) {
			name := "ok-" + transport
			pub := r.publisher(t, transport, "live/"+name)
			if _, ok := r.stream(t, "live/"+name); !ok {
				t.Fatal("allowed publish not in /api/streams")
			}
			pub.Close()
			waitFor(t, 10*time.Second, "on_done", func() bool { return len(h.find("done", name)) == 1 })
		})
	})
}

// TestHooksTimeout: a hook that does not answer within --hook-timeout refuses the
// publish, or allows it with --hooks-fail-open.
func TestHooksTimeout(t *testing.T) {
	t.Parallel()
	for _, failOpen := range []bool{false, true} {
		name := "fail closed"
		if failOpen {
			name = "fail open"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, _ := startHookRelay(t, func(c *Config) {
				c.HookTimeout = 300 * time.Millisecond
				c.HooksFailOpen = failOpen
			})
			cc, err := r.dial(t.Context(), "rtmp")
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			err = cc.Connect("hangapp", r.url("rtmp", "hangapp"))
			c := r.connect(t, "rtmp", "live")
			perr := c.Publish("hang")
			if failOpen {
				if err != nil || perr != nil {
					t.Fatalf("connect, publish with fail open: %v, %v", err, perr)
				}
				return
			}
			wantStatus(t, err, "NetConnection.Connect.Rejected", "on_connect hook unavailable: no answer within 300ms")
			wantStatus(t, perr, "NetStream.Publish.Unauthorized", "on_publish hook unavailable: no answer within 300ms")
		})
	}
}

// TestHooksConfig: bad hook flags fail at start with the flag named.
func TestHooksConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--on-publish", "/relative"}, "--on-publish"},
		{[]string{"--on-done", "ftp://h/x"}, "OnDone"},
		{[]string{"--hook-timeout", "0s"}, "--hook-timeout"},
	} {
		_, err := parseConfig(tc.args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

// TestHooksConnect: --on-connect gets every connect (app, tcurl without its query,
// flashver, protocol, args from the tcUrl's query) before the answer; a refusal is an
// _error NetConnection.Connect.Rejected saying why, logged, and the connection closes.
func TestHooksConnect(t *testing.T) {
	t.Parallel()
	h := newHookRecorder(t)
	r, logs := startRelayLogs(t, hookRelayConfig(h))
	forEachTransport(t, func(t *testing.T, transport string) {
		dial := func(t *testing.T) *rtmptest.Client {
			c, err := r.dial(t.Context(), transport)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		t.Run("allowed", func(t *testing.T) {
			app := "app-" + transport
			c := dial(t)
			if err := c.Connect(app, r.url(transport, app)+"?token=abc&x=1"); err != nil {
				t.Fatal(err)
			}
			want := url.Values{"call": {"connect"}, "app": {app}, "name": {""}, "addr": {"127.0.0.1"},
				"protocol": {transport}, "tcurl": {r.url(transport, app)}, "args": {"token=abc&x=1"},
				"token": {"abc"}, "x": {"1"}, "flashver": {"FMLE/3.0 (compatible; mtrelay rtmptest)"}}
			if f := h.find("connect", app); len(f) != 1 || f[0].Encode() != want.Encode() {
				t.Fatalf("on_connect forms %v, want one %v", f, want)
			}
			if err := c.Publish("after-" + transport); err != nil {
				t.Fatalf("publish after an allowed connect: %v", err)
			}
			if f := h.find("publish", "after-"+transport); len(f) != 1 || f[0].Get("tcurl") != r.url(transport, app) {
				t.Errorf("on_publish forms %v, want one with the tcurl", f)
			}
		})
		t.Run("denied", func(t *testing.T) {
			app := "deny-" + transport
			c := dial(t)
			wantStatus(t, c.Connect(app, r.url(transport, app)), "NetConnection.Connect.Rejected", "on_connect hook answered 403 Forbidden")
			c.SetTimeout(10 * time.Second)
			for {
				_, err := c.ReadMessage()
				if err == nil {
					continue
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("the connection is still open after a rejected connect: %v", err)
				}
				break
			}
			waitFor(t, 5*time.Second, "the connect refused log line", func() bool {
				return len(logs.find(func(l map[string]any) bool {
					return l["message"] == "connect refused" && l["app"] == app && l["protocol"] == transport &&
						strings.Contains(l["error"].(string), "403")
				})) == 1
			})
			// Counted as refused, not as bad input from the client.
			r.waitMetrics(t, "the refused connect counted", func(m map[string]float64) bool {
				return m[`mtrelay_rtmp_disconnects_total{reason="refused"}`] >= 1 &&
					m[`mtrelay_rtmp_disconnects_total{reason="bad_input"}`] == 0
			})
		})
	})
}

// getStatus GETs url and returns the status and up to n bytes of the body.
func getStatus(t *testing.T, url string, n int64) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, n))
	return resp.StatusCode, string(body)
}

// TestHooksHTTPViewers: HTTP-FLV, LL-HLS and player-page viewers go through the
// access chain: --on-play gets their protocol and query (?token=...), a refusal is
// a 403 saying why, a rename serves the other stream, and HLS asks once per
// (stream, query, client) for its playlists and serves media only after an allowed
// playlist request.
func TestHooksHTTPViewers(t *testing.T) {
	t.Parallel()
	r, h := startHookRelay(t)
	rtmptest.StartPublisher(t, r.url("rtmp", "live/tok1?token=good"), rtmptest.PublishOptions{Loop: true})
	rtmptest.StartPublisher(t, r.url("rtmp", "live/public-h"), rtmptest.PublishOptions{Loop: true})
	for _, key := range []string{"live/tok1", "live/public-h"} {
		waitFor(t, 15*time.Second, key+" live", func() bool {
			s, ok := r.stream(t, key)
			return ok && s.Live && s.Media.VideoCodec != ""
		})
	}
	base := "http://" + r.httpAddr
	t.Run("http-flv", func(t *testing.T) {
		t.Parallel()
		if code, body := getStatus(t, base+"/live/tok1.flv?token=good", 13); code != 200 || !strings.HasPrefix(body, "FLV") {
			t.Fatalf("allowed viewer: %d %q", code, body)
		}
		f := h.findProtocol("play", "tok1", "http-flv")
		if len(f) != 1 || f[0].Get("token") != "good" || f[0].Get("args") != "token=good" || f[0].Get("addr") != "127.0.0.1" || f[0].Get("app") != "live" {
			t.Fatalf("on_play forms for http-flv %v, want one with token=good", f)
		}
		if code, body := getStatus(t, base+"/live/tok1.flv?token=bad", 1<<10); code != 403 || !strings.Contains(body, "on_play hook answered 403 Forbidden") {
			t.Errorf("refused viewer: %d %q", code, body)
		}
		if code, body := getStatus(t, base+"/live/secret-h.flv", 13); code != 200 || !strings.HasPrefix(body, "FLV") {
			t.Errorf("renamed viewer: %d %q", code, body)
		}
		if len(h.findProtocol("play", "secret-h", "http-flv")) != 1 {
			t.Errorf("on_play was not asked about secret-h")
		}
	})
	t.Run("page", func(t *testing.T) {
		t.Parallel()
		if code, body := getStatus(t, base+"/play/live/tok1/live.mp4?token=bad", 1<<10); code != 403 || !strings.Contains(body, "on_play hook answered 403") {
			t.Errorf("refused page viewer: %d %q", code, body)
		}
		if code, _ := getStatus(t, base+"/play/live/tok1/live.mp4?token=good", 1<<10); code != 200 {
			t.Errorf("allowed page viewer: %d", code)
		}
		if f := h.findProtocol("play", "tok1", "page"); len(f) != 2 {
			t.Errorf("on_play forms for page %v, want two", f)
		}
	})
	t.Run("hls", func(t *testing.T) {
		t.Parallel()
		if code, body := getStatus(t, base+"/live/tok1/index.m3u8?token=bad", 1<<10); code != 403 || !strings.Contains(body, "on_play hook answered 403") {
			t.Errorf("refused playlist: %d %q", code, body)
		}
		code, index := getStatus(t, base+"/live/tok1/index.m3u8?token=good", 1<<20)
		media := regexp.MustCompile(`(?m)^([^#\s]+\.m3u8\?token=good)$`).FindStringSubmatch(index)
		if code != 200 || media == nil {
			t.Fatalf("allowed playlist: %d, want a media playlist URI with the token:\n%s", code, index)
		}
		code, pl := getStatus(t, base+"/live/tok1/"+media[1], 1<<20)
		initURI := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(pl)
		if code != 200 || initURI == nil || !strings.HasSuffix(initURI[1], "?token=good") {
			t.Fatalf("media playlist: %d, want an init URI with the token:\n%s", code, pl)
		}
		if code, body := getStatus(t, base+"/live/tok1/"+initURI[1], 1<<20); code != 200 || len(body) == 0 {
			t.Errorf("init with the token: %d, %d bytes", code, len(body))
		}
		noQuery, _, _ := strings.Cut(initURI[1], "?")
		if code, body := getStatus(t, base+"/live/tok1/"+noQuery, 1<<10); code != 403 || !strings.Contains(body, "no recent authorized playlist") {
			t.Errorf("init without the token: %d %q", code, body)
		}
		if f := h.findProtocol("play", "tok1", "hls"); len(f) != 2 || f[0].Get("token") != "bad" || f[1].Get("token") != "good" {
			t.Errorf("on_play forms for hls %v, want two (bad, then good: the media playlist is not asked again)", f)
		}
	})
}

// TestHooksJSON: with --hook-format json the hooks get application/json bodies.
func TestHooksJSON(t *testing.T) {
	t.Parallel()
	r, h := startHookRelay(t, func(c *Config) { c.HookFormat = "json" })
	c := r.connect(t, "rtmp", "live")
	if err := c.Publish("j1?key=K&x=1"); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	got := append([]map[string]any{}, h.jsons...)
	h.mu.Unlock()
	tcURL := r.url("rtmp", "live")
	want := []string{
		`{"addr":"127.0.0.1","app":"live","args":{},"call":"connect","flashver":"FMLE/3.0 (compatible; mtrelay rtmptest)","name":"","protocol":"rtmp","tcurl":"` + tcURL + `"}`,
		`{"addr":"127.0.0.1","app":"live","args":{"key":"K","x":"1"},"call":"publish","name":"j1","protocol":"rtmp","tcurl":"` + tcURL + `"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d JSON bodies %v, want %d", len(got), got, len(want))
	}
	for i, m := range got {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(m) // map keys come out sorted
		if s := strings.TrimSpace(b.String()); s != want[i] {
			t.Errorf("body %d = %s\nwant      %s", i, s, want[i])
		}
	}
}

// TestHooksReload: the hooks client exists without hook URLs; hookSet.reload adds,
// changes and removes hooks for the decisions that follow, and refuses what needs a
// restart.
func TestHooksReload(t *testing.T) {
	t.Parallel()
	h := newHookRecorder(t)
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := relay.New(relay.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	sess, err := newSessions(cfg, zerolog.Nop(), hub)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSessions(sess, cfg, zerolog.Nop())
	hs, err := newAccessControl(cfg, zerolog.New(zerolog.NewTestWriter(t)), sess)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.close()
	play := func(name string) relay.AccessDecision {
		t.Helper()
		d, err := hs.ctl.Authorize(t.Context(), relay.AccessRequest{Action: relay.ActionPlay, Key: "live/" + name, Protocol: "rtmp", Remote: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := play("deny-1"); !d.Allow {
		t.Fatalf("without hooks: %+v", d)
	}
	next := cfg
	next.OnPlay = h.srv.URL
	if err := hs.reload(next); err != nil {
		t.Fatal(err)
	}
	if d := play("deny-2"); d.Allow || !strings.Contains(d.Reason, "403") {
		t.Fatalf("after adding --on-play: %+v", d)
	}
	if d := play("secret-3"); !d.Allow || d.Key != "live/public-3" {
		t.Fatalf("rename after adding --on-play: %+v", d)
	}
	bad := next
	bad.HookTimeout = time.Hour
	if err := hs.reload(bad); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("reload with --hook-timeout 1h = %v, want needs a restart", err)
	}
	bad = next
	bad.OnPlay = "ftp://x/"
	if err := hs.reload(bad); err == nil {
		t.Fatal("reload with a bad URL succeeded")
	}
	if d := play("deny-4"); d.Allow {
		t.Fatalf("a refused reload changed the hooks: %+v", d)
	}
	if err := hs.reload(cfg); err != nil {
		t.Fatal(err)
	}
	if d := play("deny-5"); !d.Allow {
		t.Fatalf("after removing --on-play: %+v", d)
	}
	if n := len(h.find("play", "deny-1")) + len(h.find("play", "deny-5")); n != 0 {
		t.Errorf("the hook was called %d times without --on-play", n)
	}
}

// TestHooksCheckConfigMasks: check-config prints hook URLs without their password
// or query values.
func TestHooksCheckConfigMasks(t *testing.T) {
	t.Parallel()
	var out, stderr bytes.Buffer
	code := checkConfigMain([]string{"--on-publish", "http://user:secret@hook.example/x?token=abc&key=k2",
		"--on-play", "https://hook.example/play"}, func(string) string { return "" }, &out, &stderr)
	if code != 0 {
		t.Fatalf("check-config: %d %s", code, stderr.String())
	}
	for _, want := range []string{`on-publish: "http://user:***@hook.example/x?token=***&key=***"`, `on-play: "https://hook.example/play"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check-config output lacks %s:\n%s", want, out.String())
		}
	}
	for _, secret := range []string{"secret", "abc", "k2"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("check-config output shows %q:\n%s", secret, out.String())
		}
	}
}
