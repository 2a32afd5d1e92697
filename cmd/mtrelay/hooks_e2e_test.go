package main

// End-to-end tests of the HTTP hooks (--on-publish, --on-play, --on-done): the relay
// against a real hook server on 127.0.0.1, with rtmptest's Go client over RTMP and
// RTMPT.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// hookRecorder is a hook server: it records every form and answers by stream name:
// names starting with "deny" get 403, "hang" waits for the client to give up,
// "secret-X" is renamed to "public-X" by a 302, everything else gets 200.
type hookRecorder struct {
	srv *httptest.Server

	mu    sync.Mutex
	forms []url.Values // guarded by mu
}

func newHookRecorder(t *testing.T) *hookRecorder {
	t.Helper()
	h := &hookRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.forms = append(h.forms, r.PostForm)
		h.mu.Unlock()
		name := r.PostForm.Get("name")
		switch {
		case r.PostForm.Get("call") == "done":
			w.WriteHeader(http.StatusOK)
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

// find returns the forms with call and name.
func (h *hookRecorder) find(call, name string) []url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []url.Values
	for _, f := range h.forms {
		if f.Get("call") == call && f.Get("name") == name {
			out = append(out, f)
		}
	}
	return out
}

// startHookRelay runs a relay whose three hooks point at a new hookRecorder.
func startHookRelay(t *testing.T, mutate ...func(*Config)) (*testRelay, *hookRecorder) {
	t.Helper()
	h := newHookRecorder(t)
	r := startRelay(t, append([]func(*Config){func(c *Config) {
		c.OnPublish = h.srv.URL + "/on_publish"
		c.OnPlay = h.srv.URL + "/on_play"
		c.OnDone = h.srv.URL + "/on_done"
	}}, mutate...)...)
	return r, h
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
				"addr": {"127.0.0.1"}, "protocol": {transport}, "args": {"key=K"}, "key": {"K"}}
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
			c := r.connect(t, "rtmp", "live")
			err := c.Publish("hang")
			if failOpen {
				if err != nil {
					t.Fatalf("publish with fail open: %v", err)
				}
				return
			}
			wantStatus(t, err, "NetStream.Publish.Unauthorized", "on_publish hook unavailable: no answer within 300ms")
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
