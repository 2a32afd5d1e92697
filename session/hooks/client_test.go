package hooks_test

import (
	"context"
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

// hookServer is a real HTTP server on 127.0.0.1 that records every form it gets
// and answers with answer.
type hookServer struct {
	*httptest.Server
	answer func(w http.ResponseWriter, r *http.Request)

	mu    sync.Mutex
	forms []url.Values  // guarded by mu
	got   chan struct{} // one value per request, buffered
}

func newHookServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *hookServer {
	t.Helper()
	s := &hookServer{answer: answer, got: make(chan struct{}, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.mu.Unlock()
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
				t.Errorf("OnEnd set without an on_done URL")
			}
			f := srv.form(t, 0)
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
			done.mu.Lock()
			n := len(done.forms)
			done.mu.Unlock()
			if n != 1 {
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
