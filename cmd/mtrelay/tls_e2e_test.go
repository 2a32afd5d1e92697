package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/tunneltest"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// extRelay is a relay like startRelay's, optionally with the TLS listeners (RTMPS and
// HTTPS for RTMPTS) and with its log kept for assertions.
type extRelay struct {
	*testRelay
	logs *logBuffer
}

// extOptions tunes startExtRelay.
type extOptions struct {
	tls bool // generate a self-signed certificate and open the RTMPS and HTTPS listeners
}

// startExtRelay runs the relay with every listener on 127.0.0.1:0 until the test ends.
// Its log goes to the test log and to r.logs.
func startExtRelay(t testing.TB, o extOptions, mutate ...func(*Config)) *extRelay {
	t.Helper()
	r := &extRelay{logs: &logBuffer{}}
	ro := relayOptions{tls: o.tls, log: zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), r.logs)}
	r.testRelay = launchRelay(t, ro, mutate...)
	return r
}

// logBuffer keeps the relay's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeSelfSignedCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// its key to a temporary directory and returns their paths.
func writeSelfSignedCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mtrelay test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// rtmptsProxyWhitelist is the ffmpeg -protocol_whitelist RTMPTS through an HTTP
// proxy needs.
const rtmptsProxyWhitelist = "rtmpts,ffrtmphttp,https,http,tls,tcp,httpproxy"

// flowSpec describes one ffmpeg publisher and its ffmpeg players on one stream.
type flowSpec struct {
	key     string   // stream key, e.g. "live/x"
	pub     string   // publisher transport
	players []string // player transports
	env     []string // environment of every ffmpeg (http_proxy=…)
	args    []string // options of every ffmpeg's RTMP input or output
	pubArgs []string // more output options of the publisher only (after args)
	// flushDefault keeps ffmpeg's default -rtmp_flush_interval (10) for an RTMPT
	// publisher: up to 10 packets at the end never leave it (rtmphttp.c discards its
	// buffer on close), and check allows that many missing at the end.
	flushDefault bool
}

// flow is a running flowSpec: players first, then the publisher at twice real time.
type flow struct {
	spec    flowSpec
	pub     *rtmptest.Proc
	players []*rtmptest.Proc
	outs    []string
}

// startFlow starts the players, waits until the relay counts them, then starts the
// publisher.
func startFlow(t *testing.T, r *extRelay, spec flowSpec) *flow {
	t.Helper()
	f := &flow{spec: spec}
	dir := t.TempDir()
	want := map[string]int{}
	for i, tr := range spec.players {
		out := filepath.Join(dir, "player"+string(rune('0'+i))+"-"+tr+".flv")
		f.outs = append(f.outs, out)
		f.players = append(f.players, rtmptest.StartRecorder(t, r.url(tr, spec.key), out, rtmptest.RecordOptions{Env: spec.env, InputArgs: spec.args}))
		want[tr]++
	}
	waitFor(t, 20*time.Second, "players of "+spec.key+" subscribed", func() bool {
		s, ok := r.stream(t, spec.key)
		if !ok {
			return false
		}
		for tr, n := range want {
			if s.Subscribers[tr] != n {
				return false
			}
		}
		return true
	})
	extra := append(spec.args[:len(spec.args):len(spec.args)], spec.pubArgs...)
	if strings.HasPrefix(spec.pub, "rtmpt") && !spec.flushDefault { // rtmpt and rtmpts: see publishArgs
		extra = append(publishArgs("rtmpt"), extra...)
	}
	f.pub = rtmptest.StartPublisher(t, r.url(spec.pub, spec.key), rtmptest.PublishOptions{ReadRate: 2, ExtraArgs: extra, Env: spec.env})
	return f
}

// check waits for the publisher and players to end and checks that every player got
// every packet of the fixture, in order, and that every frame decodes.
func (f *flow) check(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	if f.pub == nil {
		// The test publishes itself (startFlowPlayers).
	} else if err := f.pub.Wait(ctx); err != nil {
		t.Fatalf("%s publisher: %v\n%s", f.spec.pub, err, f.pub.Stderr())
	}
	for i, p := range f.players {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("%s player %d: %v\n%s", f.spec.players[i], i, err, p.Stderr())
		}
	}
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, rtmptest.FixturePath(t)))
	for i, out := range f.outs {
		name := f.spec.key + " " + f.spec.pub + "→" + f.spec.players[i]
		gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, out))
		wantV, wantA := wantV, wantA
		if f.spec.flushDefault && len(gotV)+len(gotA) >= len(wantV)+len(wantA)-10 {
			wantV, wantA = wantV[:min(len(gotV), len(wantV))], wantA[:min(len(gotA), len(wantA))]
		}
		if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
			t.Errorf("%s: got %d video %d audio packets, want %d and %d", name, len(gotV), len(gotA), len(wantV), len(wantA))
			continue
		}
		for j := range wantV {
			if gotV[j].DataHash != wantV[j].DataHash {
				t.Errorf("%s: video packet %d differs", name, j)
				break
			}
		}
		for j := range wantA {
			if gotA[j].DataHash != wantA[j].DataHash {
				t.Errorf("%s: audio packet %d differs", name, j)
				break
			}
		}
		v, a := rtmptest.DecodeFrames(t, out)
		if v != len(wantV) || a != len(wantA) {
			t.Errorf("%s: decoded %d video %d audio frames, want %d and %d", name, v, a, len(wantV), len(wantA))
		}
	}
}

// TestFFmpegRTMPSAndRTMPTS publishes with ffmpeg over RTMPS and plays over RTMPTS and
// RTMP, and the reverse, with a self-signed certificate (ffmpeg 5.1 does not verify
// certificates unless -tls_verify 1).
func TestFFmpegRTMPSAndRTMPTS(t *testing.T) {
	t.Parallel()
	r := startExtRelay(t, extOptions{tls: true})
	flows := []*flow{
		startFlow(t, r, flowSpec{key: "live/s2ts", pub: "rtmps", players: []string{"rtmpts", "rtmp"}}),
		startFlow(t, r, flowSpec{key: "live/ts2s", pub: "rtmpts", players: []string{"rtmps", "rtmpt"}}),
	}
	for _, f := range flows {
		f.check(t)
	}
	logs := r.logs.String()
	for _, want := range []string{`"protocol":"rtmps"`, `"protocol":"rtmpts"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("relay log has no %s line", want)
		}
	}
}

// TestFFmpegRTMPTSThroughSquidCONNECT runs RTMPTS through squid: ffmpeg's tls protocol
// (libavformat/tls.c ff_tls_open_underlying) reads http_proxy, not https_proxy, and
// opens the TLS connection through a CONNECT tunnel (httpproxy protocol). ffmpeg has
// no built-in no_proxy for localhost, so 127.0.0.1 goes through the proxy too. The
// default protocol whitelist of ffrtmphttp ("https,http,tcp,tls") lacks httpproxy, so
// ffmpeg needs -protocol_whitelist for RTMPTS through a proxy ("Protocol 'httpproxy'
// not on whitelist" otherwise); RTMPT through a proxy needs nothing.
func TestFFmpegRTMPTSThroughSquidCONNECT(t *testing.T) {
	t.Parallel()
	squid := tunneltest.StartSquid(t)
	r := startExtRelay(t, extOptions{tls: true})
	env := []string{"http_proxy=" + squid.URL(), "no_proxy=", "NO_PROXY="}
	f := startFlow(t, r, flowSpec{key: "live/connect", pub: "rtmpts", players: []string{"rtmpts"}, env: env,
		args: []string{"-protocol_whitelist", rtmptsProxyWhitelist}, flushDefault: true}) // see TestFFmpegRTMPTThroughSquid
	f.check(t)
	log := squid.WaitAccessLog(t, "CONNECT "+r.httpsAddr)
	if n := strings.Count(log, "CONNECT "+r.httpsAddr); n < 2 {
		t.Errorf("squid logged %d CONNECTs to %s, want 2 (publisher and player):\n%s", n, r.httpsAddr, log)
	}
	if !strings.Contains(log, "TCP_TUNNEL/200") {
		t.Errorf("squid access log has no TCP_TUNNEL/200:\n%s", log)
	}
}

// TestFFmpegRTMPSThroughSquidCONNECT publishes and plays RTMPS through squid: ffmpeg's
// tls protocol reads http_proxy for rtmps:// as for rtmpts:// (see
// TestFFmpegRTMPTSThroughSquidCONNECT) and opens a CONNECT tunnel to --rtmps-addr; no
// -protocol_whitelist is needed (the rtmp protocol sets no default whitelist). An RTMP
// player (rtmp:// ignores http_proxy) mixes in. Every frame reaches every player, and
// squid's access log shows a CONNECT per ffmpeg.
//
// The publisher needs a huge -rtmp_flush_interval: after every flush_interval packets
// ffmpeg 5.1's RTMP publisher (rtmpproto.c rtmp_write) polls the server with a
// non-blocking one-byte read, but the httpproxy protocol under tls reads its TCP
// socket without AVIO_FLAG_NONBLOCK, so that read blocks until the server sends
// something. The relay sends a publisher nothing after publish starts, so without the
// option the publisher stops after its first 10 packets and the relay drops it after
// its idle timeout. Over plain rtmps:// the option changes nothing else: it only
// batches RTMPT POSTs.
func TestFFmpegRTMPSThroughSquidCONNECT(t *testing.T) {
	t.Parallel()
	squid := tunneltest.StartSquid(t)
	r := startExtRelay(t, extOptions{tls: true})
	env := []string{"http_proxy=" + squid.URL(), "no_proxy=", "NO_PROXY="}
	f := startFlow(t, r, flowSpec{key: "live/rtmps-connect", pub: "rtmps", players: []string{"rtmps", "rtmp"}, env: env,
		pubArgs: []string{"-rtmp_flush_interval", "1000000"}})
	f.check(t)
	log := squid.WaitAccessLog(t, "CONNECT "+r.rtmpsAddr)
	if n := strings.Count(log, "CONNECT "+r.rtmpsAddr); n < 2 {
		t.Errorf("squid logged %d CONNECTs to %s, want 2 (publisher and RTMPS player):\n%s", n, r.rtmpsAddr, log)
	}
	if !strings.Contains(log, "TCP_TUNNEL/200") {
		t.Errorf("squid access log has no TCP_TUNNEL/200:\n%s", log)
	}
}

// TestTLSOffLogged checks that a relay started without --tls-cert/--tls-key says at
// start that TLS is off: its "mtrelay listening" line has a "tls" field that says so
// and names no RTMPS or HTTPS address, and a TLS relay's line has those addresses and
// no "tls" field.
func TestTLSOffLogged(t *testing.T) {
	t.Parallel()
	listening := func(logs *logSink) map[string]any {
		t.Helper()
		var line map[string]any
		waitFor(t, 10*time.Second, "mtrelay listening", func() bool {
			lines := logs.find(func(l map[string]any) bool { return l["message"] == "mtrelay listening" })
			if len(lines) > 0 {
				line = lines[0]
			}
			return line != nil
		})
		return line
	}

	r, logs := startRelayLogs(t)
	line := listening(logs)
	if line["level"] != "info" || line["rtmp"] != r.rtmpAddr || line["http"] != r.httpAddr {
		t.Errorf("listening line %v: want level info, rtmp %s, http %s", line, r.rtmpAddr, r.httpAddr)
	}
	tlsField, _ := line["tls"].(string)
	if !strings.HasPrefix(tlsField, "off") || !strings.Contains(tlsField, "--tls-cert") {
		t.Errorf(`listening line without TLS: tls = %q, want "off: ..." naming --tls-cert`, tlsField)
	}
	for _, k := range []string{"rtmps", "https"} {
		if v, ok := line[k]; ok {
			t.Errorf("listening line without TLS has %s = %v", k, v)
		}
	}

	sink := &logSink{tw: zerolog.NewTestWriter(t)}
	rt := launchRelay(t, relayOptions{tls: true, log: sink})
	line = listening(sink)
	if _, ok := line["tls"]; ok || line["rtmps"] != rt.rtmpsAddr || line["https"] != rt.httpsAddr {
		t.Errorf("listening line with TLS %v: want rtmps %s, https %s and no tls field", line, rt.rtmpsAddr, rt.httpsAddr)
	}
}
