package rtmp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// startServer runs a hub and an RTMP server with access on a 127.0.0.1 port.
func startServer(t *testing.T, access relay.AccessController) (addr string, hub *relay.Hub) {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t))
	hub, err := relay.New(relay.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rtmp.New(rtmp.Config{Access: access}, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		hub.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if err := srv.Close(cctx); err != nil {
			t.Error(err)
		}
		<-done
	})
	return ln.Addr().String(), hub
}

func dial(t *testing.T, addr string) *rtmptest.Client {
	t.Helper()
	c, err := rtmptest.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect("live", "rtmp://"+addr+"/live"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAccessController checks that publish and play go through Config.Access: a refusal
// reaches the client with the right status code, a rename changes the hub key, and the
// controller sees the query (the stream key) that the hub key leaves out.
func TestAccessController(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []relay.AccessRequest // guarded by mu
	)
	access := relay.AccessFunc(func(ctx context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
		if req.Action == relay.ActionConnect {
			return relay.AccessDecision{Allow: true}, nil // connects are not what this test is about
		}
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		switch {
		case req.Action == relay.ActionPublish && req.Query == "key=good":
			return relay.AccessDecision{Allow: true, Key: "live/renamed"}, nil
		case req.Action == relay.ActionPublish && req.Query == "key=slow":
			<-ctx.Done()
			return relay.AccessDecision{}, ctx.Err()
		case req.Action == relay.ActionPlay && req.Key == "live/secret":
			return relay.AccessDecision{Reason: "members only"}, nil
		case req.Action == relay.ActionPlay:
			return relay.AccessDecision{Allow: true}, nil
		}
		return relay.AccessDecision{Reason: "bad stream key"}, nil
	})
	addr, hub := startServer(t, access)

	var se *rtmptest.StatusError
	if err := dial(t, addr).Publish("cam?key=bad"); !errors.As(err, &se) || se.Code != "NetStream.Publish.Unauthorized" || !strings.Contains(se.Description, "bad stream key") {
		t.Fatalf("bad key: %v, want NetStream.Publish.Unauthorized", err)
	}
	if err := dial(t, addr).Publish("cam?key=good"); err != nil {
		t.Fatalf("good key: %v", err)
	}
	if _, ok := hub.Stream("live/renamed"); !ok {
		t.Fatalf("renamed stream not in the hub: %+v", hub.Streams())
	}
	if _, ok := hub.Stream("live/cam"); ok {
		t.Fatal("the publisher's own name is visible in the hub")
	}
	if err := dial(t, addr).Play("secret"); !errors.As(err, &se) || se.Code != "NetStream.Play.Failed" {
		t.Fatalf("play secret: %v, want NetStream.Play.Failed", err)
	}
	if err := dial(t, addr).Play("renamed"); err != nil {
		t.Fatalf("play renamed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[0].Key != "live/cam" || seen[0].Query != "key=bad" || seen[0].Protocol != "rtmp" || seen[0].Remote == "" {
		t.Fatalf("first request %+v", seen[0])
	}
}
