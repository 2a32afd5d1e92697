package tunneltest_test

// These tests drive the real relay (relay.Hub, rtmp.Server, httptunnel.Server on an
// httptest server) through tunneltest.Conn with rtmptest's RTMP client. They live in
// the external test package: tunneltest itself imports only the standard library.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel"
	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// relayServer runs hub, RTMP server and RTMPT tunnels behind an httptest server
// (TLS if tls is set) until the test ends, and returns its base URL.
func relayServer(t *testing.T, tls bool) (string, *httptunnel.Server) {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	hub, err := relay.New(relay.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rtmp.New(rtmp.Config{}, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := httptunnel.New(httptunnel.Config{}, log, rs)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ts.Mount(mux)
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Close()
		if err := ts.Close(ctx); err != nil {
			t.Errorf("tunnels close: %v", err)
		}
		if err := rs.Close(ctx); err != nil {
			t.Errorf("rtmp close: %v", err)
		}
		srv.Close()
	})
	return srv.URL, ts
}

// mediaTags returns the fixture's audio and video tags.
func mediaTags(t *testing.T) []rtmptest.FLVTag {
	t.Helper()
	tags, err := rtmptest.ReadFLV(rtmptest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	var media []rtmptest.FLVTag
	for _, tg := range tags {
		if tg.TypeID == rtmptest.TypeAudio || tg.TypeID == rtmptest.TypeVideo {
			media = append(media, tg)
		}
	}
	return media
}

func dialClient(t *testing.T, base string, opts ...tunneltest.Option) (*rtmptest.Client, *tunneltest.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := tunneltest.Dial(ctx, base, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := rtmptest.NewClient(conn)
	if err != nil {
		t.Fatalf("handshake over rtmpt: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	u, _ := url.Parse(base)
	scheme := "rtmpt"
	if u.Scheme == "https" {
		scheme = "rtmpts"
	}
	if err := c.Connect("live", scheme+"://"+u.Host+"/live"); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c, conn
}

// TestDialPublishPlay publishes every audio and video tag of the fixture through one
// tunnel and plays them through another, for each client behaviour: ffmpeg-like,
// librtmp-like (pipelined), with every request replayed, and the same over TLS.
func TestDialPublishPlay(t *testing.T) {
	t.Parallel()
	tags := mediaTags(t)
	cases := []struct {
		name string
		tls  bool
		opts []tunneltest.Option
	}{
		{"ffmpeg", false, nil},
		{"pipelined", false, []tunneltest.Option{tunneltest.Pipelined()}},
		{"replay", false, []tunneltest.Option{tunneltest.WithReplay()}},
		{"ffmpeg-tls", true, nil},
		{"pipelined-tls", true, []tunneltest.Option{tunneltest.Pipelined()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, ts := relayServer(t, tc.tls)
			pub, pubConn := dialClient(t, base, tc.opts...)
			if err := pub.Publish("tt"); err != nil {
				t.Fatalf("publish: %v", err)
			}
			player, _ := dialClient(t, base, tc.opts...)
			if err := player.Play("tt"); err != nil {
				t.Fatalf("play: %v", err)
			}
			if n := ts.Tunnels(); n != 2 {
				t.Errorf("Tunnels() = %d, want 2", n)
			}
			errc := make(chan error, 1)
			go func() {
				for _, tg := range tags {
					if err := pub.WriteMedia(tg.TypeID, tg.Timestamp, tg.Payload); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			for i, want := range tags {
				m, err := player.ReadMedia(ctx)
				for err == nil && m.TypeID == rtmptest.TypeData { // |RtmpSampleAccess and the like
					m, err = player.ReadMedia(ctx)
				}
				if err != nil {
					t.Fatalf("player: message %d of %d: %v", i, len(tags), err)
				}
				if m.TypeID != want.TypeID || !bytes.Equal(m.Payload, want.Payload) {
					t.Fatalf("player: message %d: type %d, %d bytes (sha %x), want type %d, %d bytes (sha %x)",
						i, m.TypeID, len(m.Payload), sha256.Sum256(m.Payload), want.TypeID, len(want.Payload), sha256.Sum256(want.Payload))
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("publisher: %v", err)
			}
			reqs := pubConn.Requests()
			if reqs["send"] == 0 {
				t.Errorf("publisher requests %v: no /send", reqs)
			}
			if err := pubConn.Close(); err != nil {
				t.Errorf("close publisher tunnel: %v", err)
			}
			// /close ends the publish: the player hears UnpublishNotify.
			for {
				_, err := player.ReadMedia(ctx)
				if err == nil {
					continue
				}
				se, ok := errors.AsType[*rtmptest.StatusError](err)
				if !ok || se.Code != "NetStream.Play.UnpublishNotify" {
					t.Fatalf("player after publisher's /close: %v, want NetStream.Play.UnpublishNotify", err)
				}
				break
			}
		})
	}
}

// TestDialErrors checks Dial and Conn report server refusals.
func TestDialErrors(t *testing.T) {
	t.Parallel()
	base, _ := relayServer(t, false)
	ctx := t.Context()
	if _, err := tunneltest.Dial(ctx, "ftp://127.0.0.1:1"); err == nil {
		t.Errorf("Dial(ftp://) succeeded")
	}
	// A server that is not an RTMPT server: /open/1 gets 404.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := tunneltest.Dial(ctx, srv.URL)
	if se, ok := errors.AsType[*tunneltest.StatusError](err); !ok || se.Code != http.StatusNotFound {
		t.Errorf("Dial to a plain server: %v, want a 404 StatusError", err)
	}
	// Reads after the server ended the tunnel (/close by someone else) fail with 404.
	c, err := tunneltest.Dial(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/close/"+c.ID()+"/0", strings.NewReader("\x00"))
	req.Header.Set("Content-Type", "application/x-fcs")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 10))
	if se, ok := errors.AsType[*tunneltest.StatusError](err); !ok || se.Code != http.StatusNotFound {
		t.Errorf("Read on a closed tunnel: %v, want a 404 StatusError", err)
	}
}

// TestReadDeadline checks an expired read deadline interrupts a Read without losing
// the request in flight.
func TestReadDeadline(t *testing.T) {
	t.Parallel()
	base, _ := relayServer(t, false)
	c, err := tunneltest.Dial(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Read with nothing to read: %v, want a deadline error", err)
	}
	// The handshake still works on the same tunnel: C0+C1 go out and S0+S1+S2 come back.
	c.SetReadDeadline(time.Time{})
	cl, err := rtmptest.NewClient(c)
	if err != nil {
		t.Fatalf("handshake after a timed-out Read: %v", err)
	}
	cl.Close()
}
