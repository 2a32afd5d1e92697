package hooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session/hooks"
)

// hookServer is a real HTTP server on 127.0.0.1 that records every form or JSON
// body it gets and answers with answer.
type hookServer struct {
	*httptest.Server
	answer func(w http.ResponseWriter, r *http.Request)

	mu    sync.Mutex
	forms []url.Values     // guarded by mu
	jsons []map[string]any // guarded by mu
	got   chan struct{}    // one value per request, buffered
}

func newHookServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *hookServer {
	t.Helper()
	s := &hookServer{answer: answer, got: make(chan struct{}, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "want a POST", http.StatusBadRequest)
			return
		}
		switch r.Header.Get("Content-Type") {
		case "application/x-www-form-urlencoded":
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			s.forms = append(s.forms, r.PostForm)
			s.mu.Unlock()
		case "application/json":
			var m map[string]any
			if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			s.jsons = append(s.jsons, m)
			s.mu.Unlock()
		default:
			http.Error(w, "want a form or JSON body", http.StatusBadRequest)
			return
		}
		s.got <- struct{}{}
		s.answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// form returns the i-th form received.
func (s *hookServer) form(t *testing.T, i int) url.Values {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.forms) {
		t.Fatalf("hook server got %d requests, want more than %d", len(s.forms), i)
	}
	return s.forms[i]
}

// counts returns how many form and JSON bodies s got.
func (s *hookServer) counts() (forms, jsons int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.forms), len(s.jsons)
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

func redirect(code int, location string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location)
		w.WriteHeader(code)
	}
}

// hang answers only when the request is cancelled (the client gave up).
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func newClient(t *testing.T, cfg hooks.Config) *hooks.Client {
	t.Helper()
	c, err := hooks.New(cfg, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil && !errors.Is(err, hooks.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

var publishReq = relay.AccessRequest{
	Action: relay.ActionPublish, Key: "live/secret", Query: "key=K&x=1&call=evil",
	Protocol: "rtmp", Remote: "192.0.2.7:50000",
}

// TestAuthorize runs publish and play requests against hook answers.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		answer     func(http.ResponseWriter, *http.Request)
		failOpen   bool
		action     relay.Action
		wantAllow  bool
		wantKey    string
		wantReason string // substring
	}{
		{name: "200 allows", answer: status(200), wantAllow: true},
		{name: "204 allows play", answer: status(204), action: relay.ActionPlay, wantAllow: true},
		{name: "403 refuses", answer: status(403), wantReason: "on_publish hook answered 403 Forbidden"},
		{name: "404 refuses play", answer: status(404), action: relay.ActionPlay, wantReason: "on_play hook answered 404"},
		{name: "500 refuses even fail open", answer: status(500), failOpen: true, wantReason: "answered 500"},
		{name: "503 refuses", answer: status(503), wantReason: "answered 503"},
		{name: "503 allows fail open", answer: status(503), failOpen: true, wantAllow: true},
		{name: "302 renames", answer: redirect(302, "rtmp://elsewhere/live/public"), wantAllow: true, wantKey: "live/public"},
		{name: "307 relative renames", answer: redirect(307, "public2"), wantAllow: true, wantKey: "live/public2"},
		{name: "301 path renames, app kept", answer: redirect(301, "/other/public3?x=1"), wantAllow: true, wantKey: "live/public3"},
		{name: "302 renames play", answer: redirect(302, "public"), action: relay.ActionPlay, wantAllow: true, wantKey: "live/public"},
		{name: "302 without Location refuses", answer: status(302), wantReason: "without Location"},
		{name: "302 to a directory refuses", answer: redirect(302, "rtmp://h/live/"), wantReason: "names no valid stream"},
		{name: "302 to dotdot refuses", answer: redirect(302, "/a/.."), wantReason: "names no valid stream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newHookServer(t, tc.answer)
			c := newClient(t, hooks.Config{OnPublish: srv.URL + "/pub", OnPlay: srv.URL + "/play", FailOpen: tc.failOpen})
			req := publishReq
			if tc.action != 0 {
				req.Action = tc.action
			}
			d, err := c.Authorize(t.Context(), req)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if d.Allow != tc.wantAllow || d.Key != tc.wantKey || !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("decision = %+v, want allow=%v key=%q reason containing %q", d, tc.wantAllow, tc.wantKey, tc.wantReason)
			}
			if d.OnEnd != nil {
				d.OnEnd() // without an on_done URL: posts nothing
			}
			f := srv.form(t, 0)
			if n := len(srv.got); n != 1 {
				t.Errorf("hook server got %d requests, want 1", n)
			}
			want := url.Values{
				"call": {req.Action.String()}, "app": {"live"}, "name": {"secret"}, "addr": {"192.0.2.7"},
				"protocol": {"rtmp"}, "args": {"key=K&x=1&call=evil"}, "key": {"K"}, "x": {"1"},
			}
			if f.Encode() != want.Encode() {
				t.Errorf("form = %v, want %v", f, want)
			}
		})
	}
}

// TestTimeout: a hook that does not answer refuses, or allows with FailOpen; an
// unreachable hook likewise.
func TestTimeout(t *testing.T) {
	t.Parallel()
	hanging := newHookServer(t, hang)
	closedURL := func() string {
		s := httptest.NewServer(http.NotFoundHandler())
		u := s.URL
		s.Close()
		return u
	}()
	for _, tc := range []struct {
		name, url, wantReason string
		failOpen              bool
	}{
		{"no answer refuses", hanging.URL, "on_publish hook unavailable: no answer within 200ms", false},
		{"no answer fail open", hanging.URL, "", true},
		{"unreachable refuses", closedURL, "on_publish hook unavailable", false},
		{"unreachable fail open", closedURL, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, hooks.Config{OnPublish: tc.url, Timeout: 200 * time.Millisecond, FailOpen: tc.failOpen})
			d, err := c.Authorize(t.Context(), publishReq)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if d.Allow != tc.failOpen || !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("decision = %+v, want allow=%v reason containing %q", d, tc.failOpen, tc.wantReason)
			}
		})
	}
	t.Run("requester gone", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, hooks.Config{OnPublish: hanging.URL, FailOpen: true})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if d, err := c.Authorize(ctx, publishReq); err == nil {
			t.Fatalf("Authorize with a cancelled ctx = %+v, want an error even with FailOpen", d)
		}
	})
}

// TestOnDone: an allowed publish's OnEnd posts call=done with the same fields (and
// new_name after a rename) once, from a goroutine Close waits for; refused publishes
// and plays get no OnEnd.
func TestOnDone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		answer  func(http.ResponseWriter, *http.Request)
		newName string
	}{
		{"allowed", status(200), ""},
		{"renamed", redirect(302, "public"), "public"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub := newHookServer(t, tc.answer)
			done := newHookServer(t, status(200))
			c := newClient(t, hooks.Config{OnPublish: pub.URL, OnPlay: pub.URL, OnDone: done.URL})
			d, err := c.Authorize(t.Context(), publishReq)
			if err != nil || !d.Allow || d.OnEnd == nil {
				t.Fatalf("Authorize = %+v, %v; want allowed with OnEnd", d, err)
			}
			d.OnEnd()
			d.OnEnd() // a second call is a no-op
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, _ := done.counts(); n != 1 {
				t.Fatalf("on_done got %d calls, want 1 by the time Close returned", n)
			}
			f := done.form(t, 0)
			want := url.Values{
				"call": {"done"}, "app": {"live"}, "name": {"secret"}, "addr": {"192.0.2.7"},
				"protocol": {"rtmp"}, "args": {"key=K&x=1&call=evil"}, "key": {"K"}, "x": {"1"},
			}
			if tc.newName != "" {
				want.Set("new_name", tc.newName)
			}
			if f.Encode() != want.Encode() {
				t.Errorf("on_done form = %v, want %v", f, want)
			}
		})
	}
	t.Run("no OnEnd for refusals and plays", func(t *testing.T) {
		t.Parallel()
		deny := newHookServer(t, status(403))
		done := newHookServer(t, status(200))
		c := newClient(t, hooks.Config{OnPublish: deny.URL, OnDone: done.URL})
		if d, _ := c.Authorize(t.Context(), publishReq); d.Allow || d.OnEnd != nil {
			t.Errorf("refused publish: %+v, want no Allow and no OnEnd", d)
		}
		play := publishReq
		play.Action = relay.ActionPlay
		if d, _ := c.Authorize(t.Context(), play); !d.Allow || d.OnEnd != nil {
			t.Errorf("play without on_play: %+v, want Allow without OnEnd", d)
		}
	})
	t.Run("Close cancels a hanging on_done", func(t *testing.T) {
		t.Parallel()
		done := newHookServer(t, hang)
		c := newClient(t, hooks.Config{OnDone: done.URL, Timeout: time.Minute})
		d, err := c.Authorize(t.Context(), publishReq)
		if err != nil || d.OnEnd == nil {
			t.Fatalf("Authorize = %+v, %v", d, err)
		}
		d.OnEnd()
		<-done.got
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want DeadlineExceeded", err)
		}
		d.OnEnd() // after Close: logged, not called
	})
}

// TestNew checks the configuration errors name their field.
func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  hooks.Config
		want string
	}{
		{"relative URL", hooks.Config{OnPublish: "/hook"}, "OnPublish"},
		{"ftp URL", hooks.Config{OnPlay: "ftp://h/x"}, "OnPlay"},
		{"no host", hooks.Config{OnDone: "http:///x"}, "OnDone"},
		{"negative timeout", hooks.Config{Timeout: -1}, "Timeout"},
		{"relative on_connect", hooks.Config{OnConnect: "x"}, "OnConnect"},
		{"bad format", hooks.Config{Format: "xml"}, "Format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := hooks.New(tc.cfg, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	c, err := hooks.New(hooks.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if c.Enabled() {
		t.Error("Enabled without URLs")
	}
	if err := c.Close(t.Context()); err != nil {
		t.Error(err)
	}
	if err := c.Close(t.Context()); !errors.Is(err, hooks.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

var connectReq = relay.AccessRequest{
	Action: relay.ActionConnect, Key: "live", Query: "token=T&app=evil",
	Protocol: "rtmps", Remote: "192.0.2.7:50000", TCURL: "rtmps://relay.example:1936/live", FlashVer: "FMLE/3.0",
}

// TestConnect: on_connect gets call=connect with the app, tcurl, flashver and the
// tcUrl's query; its answer decides; a 3xx names another app. Without an on_connect
// URL, connects are allowed without a request.
func TestConnect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		answer     func(http.ResponseWriter, *http.Request)
		wantAllow  bool
		wantKey    string
		wantReason string
	}{
		{"200 allows", status(200), true, "", ""},
		{"403 rejects", status(403), false, "", "on_connect hook answered 403 Forbidden"},
		{"302 moves to another app", redirect(302, "rtmp://h/other"), true, "other", ""},
		{"302 to nothing rejects", redirect(302, "rtmp://h/"), false, "", "names no valid stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newHookServer(t, tc.answer)
			c := newClient(t, hooks.Config{OnConnect: srv.URL + "/connect"})
			d, err := c.Authorize(t.Context(), connectReq)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.wantAllow || d.Key != tc.wantKey || !strings.Contains(d.Reason, tc.wantReason) || d.OnEnd != nil {
				t.Fatalf("decision = %+v, want allow=%v key=%q reason containing %q, no OnEnd", d, tc.wantAllow, tc.wantKey, tc.wantReason)
			}
			want := url.Values{
				"call": {"connect"}, "app": {"live"}, "name": {""}, "addr": {"192.0.2.7"}, "protocol": {"rtmps"},
				"args": {"token=T&app=evil"}, "tcurl": {"rtmps://relay.example:1936/live"}, "flashver": {"FMLE/3.0"},
				"token": {"T"},
			}
			if f := srv.form(t, 0); f.Encode() != want.Encode() {
				t.Errorf("form = %v, want %v", f, want)
			}
		})
	}
	t.Run("no on_connect URL", func(t *testing.T) {
		t.Parallel()
		srv := newHookServer(t, status(403))
		c := newClient(t, hooks.Config{OnPublish: srv.URL, OnPlay: srv.URL})
		if d, err := c.Authorize(t.Context(), connectReq); err != nil || !d.Allow {
			t.Fatalf("connect without on_connect = %+v, %v; want allowed", d, err)
		}
		if len(srv.got) != 0 {
			t.Fatal("a hook was called for a connect without an on_connect URL")
		}
	})
}

// TestJSON: with Format json every call posts application/json with the named
// fields and args as an object; the answer decides as with forms.
func TestJSON(t *testing.T) {
	t.Parallel()
	pub := newHookServer(t, redirect(302, "public"))
	done := newHookServer(t, status(200))
	c := newClient(t, hooks.Config{OnConnect: pub.URL, OnPublish: pub.URL, OnDone: done.URL, Format: hooks.FormatJSON})
	if d, err := c.Authorize(t.Context(), connectReq); err != nil || !d.Allow || d.Key != "public" {
		t.Fatalf("connect = %+v, %v", d, err)
	}
	req := publishReq
	req.Query = "key=K&x=1&x=2"
	req.TCURL = "rtmp://relay.example/live"
	d, err := c.Authorize(t.Context(), req)
	if err != nil || !d.Allow || d.Key != "live/public" || d.OnEnd == nil {
		t.Fatalf("publish = %+v, %v", d, err)
	}
	d.OnEnd()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	done.mu.Lock()
	got := append(append([]map[string]any{}, pub.jsons...), done.jsons...)
	nforms := len(pub.forms) + len(done.forms)
	done.mu.Unlock()
	pub.mu.Unlock()
	if nforms != 0 {
		t.Errorf("%d form bodies with Format json", nforms)
	}
	want := []string{
		`{"addr":"192.0.2.7","app":"live","args":{"app":"evil","token":"T"},"call":"connect","flashver":"FMLE/3.0","name":"","protocol":"rtmps","tcurl":"rtmps://relay.example:1936/live"}`,
		`{"addr":"192.0.2.7","app":"live","args":{"key":"K","x":["1","2"]},"call":"publish","name":"secret","protocol":"rtmp","tcurl":"rtmp://relay.example/live"}`,
		`{"addr":"192.0.2.7","app":"live","args":{"key":"K","x":["1","2"]},"call":"done","name":"secret","new_name":"public","protocol":"rtmp","tcurl":"rtmp://relay.example/live"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d JSON bodies, want %d: %v", len(got), len(want), got)
	}
	for i, m := range got {
		b, _ := json.Marshal(m) // map keys come out sorted
		if string(b) != want[i] {
			t.Errorf("body %d = %s\nwant      %s", i, b, want[i])
		}
	}
}

// TestSetConfig: a Client built without URLs allows everything; SetConfig adds,
// changes and removes hooks for the decisions that follow, rejects a bad
// configuration without changing anything, and is safe to call while decisions run.
func TestSetConfig(t *testing.T) {
	t.Parallel()
	deny := newHookServer(t, status(403))
	allow := newHookServer(t, status(204))
	c := newClient(t, hooks.Config{})
	if c.Enabled() {
		t.Fatal("Enabled without URLs")
	}
	decide := func() relay.AccessDecision {
		t.Helper()
		d, err := c.Authorize(t.Context(), publishReq)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decide(); !d.Allow {
		t.Fatalf("no hooks: %+v, want allowed", d)
	}
	if err := c.SetConfig(hooks.Config{OnPublish: deny.URL, Format: hooks.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	if d := decide(); d.Allow || !strings.Contains(d.Reason, "403") {
		t.Fatalf("after adding a denying on_publish: %+v", d)
	}
	if _, n := deny.counts(); n != 1 {
		t.Fatalf("deny hook got %d JSON bodies, want 1", n)
	}
	if err := c.SetConfig(hooks.Config{OnPublish: "ftp://x/"}); err == nil || !strings.Contains(err.Error(), "OnPublish") {
		t.Fatalf("SetConfig(bad) = %v, want an error naming OnPublish", err)
	}
	if got := c.Config(); got.OnPublish != deny.URL || got.Format != hooks.FormatJSON || got.Timeout != hooks.DefaultTimeout {
		t.Fatalf("after a rejected SetConfig: %+v, want the previous config", got)
	}

	// Decisions run while the configuration flips between the two servers.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Authorize(context.Background(), publishReq); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 20 {
		u := allow.URL
		if i%2 == 1 {
			u = deny.URL
		}
		if err := c.SetConfig(hooks.Config{OnPublish: u, OnPlay: u}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	if err := c.SetConfig(hooks.Config{OnPublish: allow.URL}); err != nil {
		t.Fatal(err)
	}
	if d := decide(); !d.Allow {
		t.Fatalf("after switching to an allowing hook: %+v", d)
	}
	if err := c.SetConfig(hooks.Config{}); err != nil {
		t.Fatal(err)
	}
	if c.Enabled() {
		t.Fatal("Enabled after removing every URL")
	}
}
