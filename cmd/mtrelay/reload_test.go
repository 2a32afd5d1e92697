package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// reloadRelay is a relay started from a config file, as main starts it: its logger
// filters through a levelWriter, and hup stands in for SIGHUP.
type reloadRelay struct {
	*testRelay
	file string         // the config file; rewrite it, then send on hup
	hup  chan os.Signal // signal.Notify's channel in main
	logs *logSink
}

// startReloadRelay writes yaml to a config file and runs the relay from it, with
// every listener on 127.0.0.1:0 (the file's addresses are not used).
func startReloadRelay(t *testing.T, yaml string, tlsOn bool) *reloadRelay {
	t.Helper()
	file := filepath.Join(t.TempDir(), "mtrelay.yaml")
	writeFile(t, file, yaml)
	noEnv := func(string) string { return "" }
	load := func() (Config, error) { return parseConfig([]string{"--config", file}, noEnv, io.Discard) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	sink := &logSink{tw: zerolog.NewTestWriter(t)}
	log, level := newLogger(cfg, sink)
	hup := make(chan os.Signal, 1)
	r := launchRelay(t, relayOptions{tls: tlsOn, cfg: &cfg, run: func(ctx context.Context, cfg Config, ls listeners) error {
		return runReloadable(ctx, cfg, log, ls, reloadOpts{hup: hup, load: load, level: level})
	}})
	return &reloadRelay{testRelay: r, file: file, hup: hup, logs: sink}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reload rewrites the config file, sends SIGHUP and waits until the relay logged the
// end of that reload.
func (rr *reloadRelay) reload(t *testing.T, yaml string) {
	t.Helper()
	done := func() int {
		return len(rr.logs.find(func(m map[string]any) bool {
			return m["message"] == "config reloaded" || m["message"] == "reload failed: configuration unchanged"
		}))
	}
	before := done()
	writeFile(t, rr.file, yaml)
	rr.hup <- syscall.SIGHUP
	waitFor(t, 10*time.Second, "the reload", func() bool { return done() > before })
}

// changeLines returns the reload log lines about key.
func (rr *reloadRelay) changeLines(key string) []map[string]any {
	return rr.logs.find(func(m map[string]any) bool { return m["key"] == key })
}

// get requests path and reads the whole response. Small responses are buffered by
// net/http until the handler returns, so the access log line of the request was
// written (or dropped) before the client has the response.
func (rr *reloadRelay) get(t *testing.T, path string) {
	t.Helper()
	resp, err := http.Get("http://" + rr.httpAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// accessLines returns the access log lines for path at level.
func (rr *reloadRelay) accessLines(path, level string) []map[string]any {
	return rr.logs.find(func(m map[string]any) bool {
		return m["message"] == "http request" && m["path"] == path && m["level"] == level
	})
}

// TestReloadUnderLoad changes the log level, max-conns, a hub limit (play-wait) and
// an RTMPT limit (rtmpt-max-tunnels) with SIGHUP while a stream plays to an RTMP and
// an RTMPT player: both get every frame, debug lines appear and disappear with the
// level, the connection and tunnel limits apply to the next connection and tunnel,
// a player that joins after the reload gets the new play-wait, and a changed listen
// address is logged as needing a restart.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	rr := startReloadRelay(t, "log-level: info\nmax-conns: 100\n", false)
	const key = "live/reload"
	tags := fixtureTags(t)
	half := len(tags) / 2
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	rtmpPl := rr.player(t, "rtmp", key)
	tunnelPl := rr.player(t, "rtmpt", key)
	reads := []<-chan readResult{goRead(t, ctx, rtmpPl, nil), goRead(t, ctx, tunnelPl, nil)}
	pub := rr.publisher(t, "rtmp", key)
	if err := sendTags(ctx, pub, tags[:half], 0, newPacer(8, 0)); err != nil {
		t.Fatalf("publisher: %v", err)
	}

	// info: the access log's debug lines are dropped.
	rr.get(t, "/healthz")
	if got := rr.accessLines("/healthz", "debug"); len(got) != 0 {
		t.Fatalf("at log-level info, access log debug lines were written: %v", got)
	}

	// debug, room for exactly the three connections there are (publisher, two
	// players) and the one tunnel, a short play-wait for new players; the RTMP port
	// moves, which needs a restart.
	const limits = "play-wait: 1s\nrtmpt-max-tunnels: 1\nhandshake-timeout: 1s\n"
	rr.reload(t, "log-level: debug\nmax-conns: 3\nrtmp-addr: \":1\"\n"+limits)
	for _, key := range []string{"log-level", "max-conns", "play-wait", "rtmpt-max-tunnels", "handshake-timeout"} {
		if l := rr.changeLines(key); len(l) != 1 || l[0]["applied"] != true {
			t.Errorf("%s change: log lines %v, want one, applied", key, l)
		}
	}
	if l := rr.changeLines("rtmp-addr"); len(l) != 1 || l[0]["applied"] != false || l[0]["message"] != "config change needs a restart" {
		t.Errorf("rtmp-addr change: log lines %v, want one that needs a restart", l)
	}
	rr.get(t, "/healthz")
	if got := rr.accessLines("/healthz", "debug"); len(got) != 1 {
		t.Fatalf("at log-level debug: %d access log lines for /healthz, want 1", len(got))
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	if c, err := dialConnect(dctx, rr.rtmpAddr, "live"); err == nil {
		c.Close()
		t.Errorf("a fourth connection was accepted at max-conns 3")
	}
	dcancel()
	resp, err := http.Post("http://"+rr.httpAddr+"/open/1", "application/x-fcs", bytes.NewReader([]byte{0}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a second RTMPT tunnel at rtmpt-max-tunnels 1: %s, want 503", resp.Status)
	}

	// Back to info with room again; the restart-only key is still reported.
	rr.reload(t, "log-level: info\nmax-conns: 100\nrtmp-addr: \":1\"\n"+limits)
	if l := rr.changeLines("rtmp-addr"); len(l) != 2 {
		t.Errorf("rtmp-addr: %d log lines, want it reported again while it differs from the running value", len(l))
	}
	for _, key := range []string{"play-wait", "rtmpt-max-tunnels"} { // applied, unchanged since
		if l := rr.changeLines(key); len(l) != 1 {
			t.Errorf("%s: %d log lines, want 1: an applied value is the running one", key, len(l))
		}
	}
	rr.get(t, "/healthz")
	if got := rr.accessLines("/healthz", "debug"); len(got) != 1 {
		t.Fatalf("back at log-level info: %d access log debug lines for /healthz, want still 1", len(got))
	}
	// A player that joins now waits the new play-wait (1s, not the default 30s) for
	// a publisher that never comes, and is counted under that reason.
	late := rr.player(t, "rtmp", "live/other") // max-conns is 100 again
	rr.waitMetrics(t, "the late player to give up after the new play-wait", func(m map[string]float64) bool {
		return m[`mtrelay_subscribers_disconnected_total{protocol="rtmp",reason="no_publisher"}`] == 1
	})
	late.Close()
	// A connection that never handshakes is closed after the new handshake-timeout
	// (1s, not the default 10s).
	raw, err := net.Dial("tcp", rr.rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(8 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("a silent connection after handshake-timeout 1s: %v, want it closed by the relay", err)
	}
	raw.Close()

	if err := publishAll(ctx, pub, tags[half:], 0, newPacer(8, tags[half].Timestamp)); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	for i, who := range []string{"rtmp player", "rtmpt player"} {
		res := <-reads[i]
		wantUnpublished(t, who, res)
		compareToTags(t, who, res.msgs, tags, 0)
	}
}

// TestReloadBadConfig checks that a config file that no longer loads changes nothing.
func TestReloadBadConfig(t *testing.T) {
	t.Parallel()
	rr := startReloadRelay(t, "log-level: info\n", false)
	rr.reload(t, "log-level: loud\n")
	if l := rr.logs.find(func(m map[string]any) bool { return m["message"] == "reload failed: configuration unchanged" }); len(l) != 1 {
		t.Fatalf("reload failure: %v", l)
	}
	rr.get(t, "/healthz")
	if got := rr.accessLines("/healthz", "debug"); len(got) != 0 {
		t.Fatalf("log level changed by a bad config: %v", got)
	}
	rr.reload(t, "log-level: info\naccess-log: info\n")
	rr.get(t, "/healthz")
	if got := rr.accessLines("/healthz", "info"); len(got) != 1 {
		t.Fatalf("access-log info after reload: %d lines, want 1", len(got))
	}
}

// TestReloadTLSCertificate replaces the certificate files in place and reloads: new
// TLS handshakes get the new certificate.
func TestReloadTLSCertificate(t *testing.T) {
	t.Parallel()
	cert, key := writeSelfSignedCert(t)
	rr := startReloadRelay(t, "tls-cert: "+cert+"\ntls-key: "+key+"\n", true)
	served := func() []byte {
		t.Helper()
		c, err := tls.Dial("tcp", rr.httpsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	fileDER := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := pem.Decode(b)
		return p.Bytes
	}
	if !bytes.Equal(served(), fileDER(cert)) {
		t.Fatal("served certificate is not the configured one")
	}
	cert2, key2 := writeSelfSignedCert(t)
	for _, cp := range [][2]string{{cert2, cert}, {key2, key}} {
		b, err := os.ReadFile(cp[0])
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, cp[1], string(b))
	}
	rr.reload(t, "tls-cert: "+cert+"\ntls-key: "+key+"\n")
	if !bytes.Equal(served(), fileDER(cert2)) {
		t.Fatal("after reload: served certificate is not the new file's")
	}
	// Other file names take effect too.
	cert3, key3 := writeSelfSignedCert(t)
	rr.reload(t, "tls-cert: "+cert3+"\ntls-key: "+key3+"\n")
	if !bytes.Equal(served(), fileDER(cert3)) {
		t.Fatal("after reload with new names: served certificate is not the new file's")
	}
	if l := rr.changeLines("tls-cert"); len(l) != 1 || l[0]["applied"] != true {
		t.Errorf("tls-cert change: %v", l)
	}
}

// TestAdminReloadNoDatabase: without a database there are no admins, so the HTTP
// reload endpoint does not exist (404); SIGHUP is the way.
func TestAdminReloadNoDatabase(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	resp, err := http.Post("http://"+r.httpAddr+"/api/admin/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /api/admin/reload without a database: %d, want 404", resp.StatusCode)
	}
}

// TestAdminReload: with a database, POST /api/admin/reload needs an admin's session
// and CSRF token.
func TestAdminReload(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t)
	root := r.db.CreateRole(t, "root", "rootpw", "mtrelay_admin")
	dave := r.db.CreateRole(t, "dave", "davepw", "mtrelay_user")

	resp, err := http.Post("http://"+r.httpAddr+"/api/admin/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no session: %d, want 401", resp.StatusCode)
	}
	if code, b := r.login(t, dave, "davepw").do("POST", "/api/admin/reload", nil); code != http.StatusForbidden {
		t.Errorf("user: %d %s, want 403", code, b)
	}
	admin := r.login(t, root, "rootpw")
	csrf := admin.csrf
	admin.csrf = "wrong"
	if code, b := admin.do("POST", "/api/admin/reload", nil); code != http.StatusForbidden {
		t.Errorf("admin with a wrong CSRF token: %d %s, want 403", code, b)
	}
	admin.csrf = csrf
	if code, b := admin.do("POST", "/api/admin/reload", nil); code != http.StatusOK || !bytes.Contains(b, []byte(`"changes":[]`)) {
		t.Errorf("admin: %d %s, want 200 and no changes", code, b)
	}
}

// TestReloadRecordPatterns changes --record with SIGHUP: a publish matching the old
// patterns is recorded (the recording metrics count it), one after the reload to
// "none" is not, and the recording that runs across the reload goes on.
func TestReloadRecordPatterns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := "record-dir: " + dir + "\n"
	rr := startReloadRelay(t, conf+"record: live/rec*\n", false)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tags := fixtureTags(t)[:60]

	running := rr.publisher(t, "rtmp", "live/rec1")
	if err := sendTags(ctx, running, tags[:30], 0, newPacer(20, 0)); err != nil {
		t.Fatal(err)
	}
	rr.waitMetrics(t, "the recording to start", func(m map[string]float64) bool {
		return m["mtrelay_recordings_active"] == 1 && m["mtrelay_recordings_started_total"] == 1 && m["mtrelay_recording_bytes_total"] > 0
	})

	rr.reload(t, conf+"record: none\n")
	if l := rr.changeLines("record"); len(l) != 1 || l[0]["applied"] != true {
		t.Errorf("record change: log lines %v, want one, applied", l)
	}
	other := rr.publisher(t, "rtmp", "live/rec2")
	if err := publishAll(ctx, other, tags, 0, newPacer(20, 0)); err != nil {
		t.Fatal(err)
	}
	before := rr.metrics(t)["mtrelay_recording_bytes_total"]
	if err := publishAll(ctx, running, tags[30:], tags[30].Timestamp, newPacer(20, tags[30].Timestamp)); err != nil {
		t.Fatal(err)
	}
	m := rr.waitMetrics(t, "the running recording to finish", func(m map[string]float64) bool {
		return m["mtrelay_recordings_active"] == 0
	})
	if m["mtrelay_recordings_started_total"] != 1 || m["mtrelay_recordings_failed_total"] != 0 {
		t.Errorf("recordings started %v, failed %v; want 1 and 0 (live/rec2 began after record: none)",
			m["mtrelay_recordings_started_total"], m["mtrelay_recordings_failed_total"])
	}
	if m["mtrelay_recording_bytes_total"] <= before {
		t.Errorf("recording bytes %v → %v: the recording across the reload stopped growing", before, m["mtrelay_recording_bytes_total"])
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "live", "rec2*")); len(files) != 0 {
		t.Errorf("live/rec2 was recorded after record: none: %v", files)
	}
}
