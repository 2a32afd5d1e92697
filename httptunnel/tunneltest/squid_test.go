package tunneltest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func proxyClient(t *testing.T, s *Squid) *http.Client {
	t.Helper()
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	// http.ProxyURL, not ProxyFromEnvironment: the latter never proxies
	// requests to localhost.
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestSquidGET(t *testing.T) {
	t.Parallel()
	s := StartSquid(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	defer origin.Close()

	resp, err := proxyClient(t, s).Get(origin.URL + "/live/test.flv")
	if err != nil {
		t.Fatalf("GET through squid: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "hello /live/test.flv" {
		t.Fatalf("GET through squid = %d %q, want 200 %q", resp.StatusCode, body, "hello /live/test.flv")
	}
	if via := resp.Header.Get("Via"); !strings.Contains(via, "squid") {
		t.Errorf("response Via = %q, want squid's: did the request bypass the proxy?", via)
	}
	s.WaitAccessLog(t, "TCP_MISS/200")
	s.WaitAccessLog(t, "GET "+origin.URL+"/live/test.flv")
}

// TestSquidCONNECT tunnels to a plain TCP echo server on a random port: the
// config must not restrict CONNECT to port 443.
func TestSquidCONNECT(t *testing.T) {
	t.Parallel()
	s := StartSquid(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	defer func() { <-echoDone }()
	defer ln.Close()

	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := ln.Addr().String()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s = %s, want 200", target, resp.Status)
	}
	const msg = "rtmp bytes through the tunnel"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
	c.Close()
	// Squid logs a tunnel when it closes.
	s.WaitAccessLog(t, "TCP_TUNNEL/200")
	s.WaitAccessLog(t, "CONNECT "+target)
}

// TestSquidDeniesNonLoopback checks tests cannot reach the network through
// squid. 192.0.2.1 is TEST-NET-1; squid answers 403 without connecting.
func TestSquidDeniesNonLoopback(t *testing.T) {
	t.Parallel()
	s := StartSquid(t)
	resp, err := proxyClient(t, s).Get("http://192.0.2.1/")
	if err != nil {
		t.Fatalf("GET through squid: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET non-loopback through squid = %s, want 403", resp.Status)
	}
	s.WaitAccessLog(t, "TCP_DENIED/403")
}

func TestSquidStop(t *testing.T) {
	t.Parallel()
	s := StartSquid(t)
	s.Stop()
	s.Stop() // idempotent
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Fatalf("squid still accepts on %s after Stop", s.Addr())
	}
}
