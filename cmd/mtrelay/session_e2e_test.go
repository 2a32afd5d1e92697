package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
	"github.com/mtrelay/mtrelay/session"
	"github.com/mtrelay/mtrelay/session/sessiontest"
)

// TestMain stops the private PostgreSQL cluster the session tests start.
func TestMain(m *testing.M) { os.Exit(sessiontest.Main(m)) }

// dbRelay is a relay with --database-url pointing at a fresh migrated database.
type dbRelay struct {
	*testRelay
	db *sessiontest.DB
}

func startDBRelay(t *testing.T, mutate ...func(*Config)) *dbRelay {
	t.Helper()
	db := sessiontest.NewDatabase(t, func(ctx context.Context, url string) error {
		// The real subcommand, as an operator runs it.
		if code := realMain([]string{"migrate", "--database-url", url}, func(string) string { return "" }, io.Discard); code != 0 {
			return errors.New("mtrelay migrate failed")
		}
		return nil
	})
	svc := db.CreateRole(t, "relay", "relaypw", "mtrelay_service")
	r := startRelay(t, append([]func(*Config){func(c *Config) {
		c.DatabaseURL = db.Cluster.URLFor(svc, "relaypw", db.Name)
	}}, mutate...)...)
	return &dbRelay{testRelay: r, db: db}
}

// apiClient is one logged-in browser.
type apiClient struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (r *dbRelay) login(t *testing.T, user, password string) *apiClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &apiClient{t: t, base: "http://" + r.httpAddr, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	code, b := c.do("POST", "/api/login", map[string]string{"username": user, "password": password})
	if code != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, code, b)
	}
	var s struct{ CSRF string }
	json.Unmarshal(b, &s)
	c.csrf = s.CSRF
	return c
}

func (c *apiClient) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *apiClient) createKey(app, stream string) session.Key {
	c.t.Helper()
	code, b := c.do("POST", "/api/keys", map[string]string{"app": app, "stream": stream})
	if code != http.StatusCreated {
		c.t.Fatalf("create key: %d %s", code, b)
	}
	var k session.Key
	json.Unmarshal(b, &k)
	return k
}

// goPublish publishes name on app with the Go client and returns the refusal, if any.
func goPublish(t *testing.T, r *testRelay, app, name string) (*rtmptest.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := dialConnect(ctx, r.rtmpAddr, app)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := c.Publish(name); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func wantUnauthorized(t *testing.T, err error, what string) {
	t.Helper()
	se, ok := errors.AsType[*rtmptest.StatusError](err)
	if !ok || se.Code != "NetStream.Publish.Unauthorized" {
		t.Fatalf("%s: %v, want NetStream.Publish.Unauthorized", what, err)
	}
}

// TestSessionStreamKeys: ffmpeg publishes only with a valid key; kick by another
// user is refused and by the owner disconnects the publisher; a revoked key is
// refused on the next publish.
func TestSessionStreamKeys(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t)
	alice := r.db.CreateRole(t, "alice", "alicepw", "mtrelay_user")
	bob := r.db.CreateRole(t, "bob", "bobpw", "mtrelay_user")
	ca, cb := r.login(t, alice, "alicepw"), r.login(t, bob, "bobpw")
	k := ca.createKey("live", "cam")

	// Without a key, and with a wrong one: refused.
	_, err := goPublish(t, r.testRelay, "live", "cam")
	wantUnauthorized(t, err, "publish without a key")
	_, err = goPublish(t, r.testRelay, "live", "cam?key=wrong-wrong-wrong-wrong")
	wantUnauthorized(t, err, "publish with a wrong key")
	// Another stream's key does not open this one.
	_, err = goPublish(t, r.testRelay, "live", "other?key="+k.Key)
	wantUnauthorized(t, err, "publish with another stream's key")

	noKey := rtmptest.StartPublisher(t, r.rtmpURL("live/cam"), rtmptest.PublishOptions{Loop: true})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	if err := noKey.Wait(ctx); err == nil {
		t.Fatal("ffmpeg without a key exited 0")
	}
	cancel()

	pub := rtmptest.StartPublisher(t, r.rtmpURL("live/cam?key="+k.Key), rtmptest.PublishOptions{Loop: true})
	waitFor(t, 20*time.Second, "the keyed stream to go live", func() bool {
		st, ok := r.stream(t, "live/cam")
		return ok && st.Publisher != nil
	})

	if code, b := cb.do("POST", "/api/streams/live/cam/kick", nil); code != http.StatusForbidden {
		t.Fatalf("kick by another user: %d %s, want 403", code, b)
	}
	if code, _ := ca.do("POST", "/api/streams/live/nothing/kick", nil); code != http.StatusNotFound {
		t.Fatalf("kick of a stream that is not live: %d, want 404", code)
	}
	if code, b := ca.do("POST", "/api/streams/live/cam/kick", nil); code != http.StatusNoContent {
		t.Fatalf("kick by the owner: %d %s, want 204", code, b)
	}
	if st, ok := r.stream(t, "live/cam"); ok && st.Publisher != nil {
		t.Fatal("stream still has a publisher after kick")
	}
	// Nobody plays it: the stream leaves /api/streams.
	waitFor(t, 10*time.Second, "the kicked stream to leave /api/streams", func() bool {
		_, ok := r.stream(t, "live/cam")
		return !ok
	})
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := pub.Wait(ctx); err == nil {
		// ffmpeg notices the closed socket and exits with an error.
		t.Log("kicked ffmpeg exited 0")
	}

	if code, _ := ca.do("DELETE", "/api/keys/"+strconv.FormatInt(k.ID, 10), nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	_, err = goPublish(t, r.testRelay, "live", "cam?key="+k.Key)
	wantUnauthorized(t, err, "publish with a revoked key")
}

// TestSessionDatabaseDown: with the database gone, a running stream keeps going,
// new publishes are refused, and logins answer 503.
func TestSessionDatabaseDown(t *testing.T) {
	t.Parallel()
	cl, err := sessiontest.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	if _, err := session.Migrate(t.Context(), cl.URL("postgres")); err != nil {
		t.Fatal(err)
	}
	conn := cl.URL("postgres")
	r := startRelay(t, func(c *Config) { c.DatabaseURL = conn })
	// The superuser owns no keys; make one directly.
	k := "0123456789abcdef0123456789"
	if err := execSQL(t, conn, "INSERT INTO mtrelay.stream_keys (app, stream, key) VALUES ('live','up','"+k+"')"); err != nil {
		t.Fatal(err)
	}
	pub, err := goPublish(t, r, "live", "up?key="+k)
	if err != nil {
		t.Fatalf("publish with a key: %v", err)
	}
	var mu sync.Mutex
	write := func(ts uint32) error {
		mu.Lock()
		defer mu.Unlock()
		return pub.WriteMedia(9, ts, []byte{0x17, 1, 0, 0, 0, 1, 2, 3})
	}
	if err := write(0); err != nil {
		t.Fatal(err)
	}
	cl.Stop()

	_, err = goPublish(t, r, "live", "other?key="+k)
	wantUnauthorized(t, err, "publish with the database down")
	if err := write(40); err != nil {
		t.Fatalf("running publisher cut off when the database went down: %v", err)
	}
	st, ok := r.stream(t, "live/up")
	if !ok || st.Publisher == nil {
		t.Fatal("running stream gone with the database")
	}
	resp, err := http.Post("http://"+r.httpAddr+"/api/login", "application/json", strings.NewReader(`{"username":"u","password":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login with the database down: %d, want 503", resp.StatusCode)
	}
}

// TestSessionNoDatabase: without --database-url publishing is open, logins 503 and
// / is the public stream list.
func TestSessionNoDatabase(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	if _, err := goPublish(t, r, "live", "open"); err != nil {
		t.Fatalf("open publish: %v", err)
	}
	resp, err := http.Post("http://"+r.httpAddr+"/api/login", "application/json", strings.NewReader(`{"username":"u","password":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "logins disabled: no database configured") {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	// / stays the public stream list; /streams is the same list.
	for _, p := range []string{"/", "/streams"} {
		if code, page := sessGet(t, "http://"+r.httpAddr+p); code != http.StatusOK || !strings.Contains(page, "<h1>Live streams</h1>") {
			t.Fatalf("GET %s without a database: %d, want the stream list", p, code)
		}
	}
}

// TestSession50AtShutdown: 50 logged-in sessions each hold their own backend, and
// the relay's shutdown closes them all.
func TestSession50AtShutdown(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t)
	u := r.db.CreateRole(t, "many", "pw", "mtrelay_user")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { r.login(t, u, "pw") })
	}
	wg.Wait()
	if n := r.db.Backends(t, u); n != 50 {
		t.Fatalf("%d backends for 50 sessions", n)
	}
	r.cancel()
	err := <-r.done
	r.done <- err // for the cleanup in launchRelay
	if n := r.db.Backends(t, u); n != 0 {
		// Close waited for every Terminate; give the server a moment to reap.
		waitFor(t, 10*time.Second, "backends to go", func() bool { return r.db.Backends(t, u) == 0 })
	}
}

func execSQL(t *testing.T, url, q string) error {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), q)
	return err
}

// TestSessionPublishLogAndRevoke: through the real relay, a keyed publish is logged
// and, once the publisher disconnects, gets ended_at and a duration (so does one
// refused as busy after its key check); a key revoked
// with POST /api/keys/{id}/revoke refuses the next publish; the console is at / (and
// /console), the stream list at /streams.
func TestSessionPublishLogAndRevoke(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t)
	carol := r.db.CreateRole(t, "carol", "carolpw", "mtrelay_user")
	c := r.login(t, carol, "carolpw")
	k := c.createKey("live", "rv")

	pub, err := goPublish(t, r.testRelay, "live", "rv?key="+k.Key)
	if err != nil {
		t.Fatalf("publish with the key: %v", err)
	}
	waitFor(t, 10*time.Second, "the stream to go live", func() bool {
		st, ok := r.stream(t, "live/rv")
		return ok && st.Publisher != nil
	})
	code, b := c.do("GET", "/api/live", nil)
	var live []session.LiveStream
	json.Unmarshal(b, &live)
	if code != http.StatusOK || len(live) != 1 || live[0].Key != "live/rv" || !live[0].Mine {
		t.Fatalf("GET /api/live: %d %s, want live/rv marked mine", code, b)
	}
	// A second publisher with the same key passes the key check (and is logged) but
	// the stream is busy: its log row is ended at once.
	_, err = goPublish(t, r.testRelay, "live", "rv?key="+k.Key)
	if se, ok := errors.AsType[*rtmptest.StatusError](err); !ok || se.Code != "NetStream.Publish.BadName" {
		t.Fatalf("second publisher: %v, want NetStream.Publish.BadName", err)
	}
	pub.Close()
	var log []session.Publish
	waitFor(t, 10*time.Second, "the publish log to record both ends", func() bool {
		code, b := c.do("GET", "/api/publishes", nil)
		log = nil
		json.Unmarshal(b, &log)
		return code == http.StatusOK && len(log) == 2 && log[0].EndedAt != nil && log[1].EndedAt != nil
	})
	for _, p := range log {
		if p.AppStream != "live/rv" || p.Owner != carol || p.Duration == nil || *p.Duration < 0 {
			t.Fatalf("publish log: %+v", p)
		}
	}

	if code, b := c.do("POST", "/api/keys/"+strconv.FormatInt(k.ID, 10)+"/revoke", nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, b)
	}
	_, err = goPublish(t, r.testRelay, "live", "rv?key="+k.Key)
	wantUnauthorized(t, err, "publish with a revoked (inactive) key")

	// The console is / (and /console leads there); the stream list moved to /streams.
	for _, p := range []string{"/", "/console"} {
		if code, page := sessGet(t, "http://"+r.httpAddr+p); code != http.StatusOK || !strings.Contains(page, "/console/console.js") {
			t.Fatalf("GET %s: %d, want the console page", p, code)
		}
	}
	if code, page := sessGet(t, "http://"+r.httpAddr+"/streams"); code != http.StatusOK || !strings.Contains(page, "<h1>Live streams</h1>") {
		t.Fatalf("GET /streams: %d, want the stream list", code)
	}
}

// sessGet returns the status and body of GET url (redirects followed).
func sessGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleChromium drives the console at / in headless Chromium: log in with the
// form, create a key (with a copy button), see the keyed stream live with its
// player link, kick it, revoke the key, see a recording with its file and player
// links; every write goes through the page's script with its X-CSRF-Token header.
func TestConsoleChromium(t *testing.T) {
	t.Parallel()
	r := startDBRelay(t)
	dave := r.db.CreateRole(t, "dave", "davepw", "mtrelay_user")
	// A recording of dave's, written as the relay's recorder does (service role).
	if err := execSQL(t, r.db.URL, `SELECT mtrelay.recording_started('live', 'web', 'live/web-20261130-120000.flv', '`+
		dave+`', now())`); err != nil {
		t.Fatal(err)
	}
	ctx := startChromium(t)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.httpAddr+"/")); err != nil {
		t.Fatalf("open console: %v", err)
	}
	js := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return s
	}
	waitJS := func(what, expr string) {
		t.Helper()
		waitFor(t, 20*time.Second, what, func() bool { return js(expr) == "true" })
	}
	text := func(id string) string { return js(`document.getElementById("` + id + `").textContent`) }

	waitJS("the login form", `String(!document.getElementById("login").hidden)`)
	if got := js(`document.querySelector('a[href="/streams"]') ? "yes" : "no"`); got != "yes" {
		t.Fatal("the login page does not link the public stream list at /streams")
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`#login input[name="username"]`, dave),
		chromedp.SendKeys(`#login input[name="password"]`, "davepw"),
		chromedp.Click(`#login button[type="submit"]`),
	); err != nil {
		t.Fatalf("log in: %v", err)
	}
	waitJS("the console after login", `String(!document.getElementById("app").hidden)`)
	if got := text("user"); got != dave {
		t.Fatalf("logged in as %q, want %q", got, dave)
	}

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`#newkey input[name="stream"]`, "web"),
		chromedp.Click(`#newkey button[type="submit"]`),
	); err != nil {
		t.Fatalf("create key: %v", err)
	}
	waitJS("the new key in the table", `String(document.getElementById("keys").textContent.includes("live/web"))`)
	key := js(`document.querySelector("#keys code").textContent`)
	if got := js(`String(document.querySelectorAll("#keys button.copy").length)`); got != "1" {
		t.Fatalf("%s copy buttons for one key, want 1", got)
	}
	waitJS("the recording with its file and player links", `String(
		!!document.querySelector('#recordings a[href="/vod/live/web-20261130-120000.flv"]') &&
		!!document.querySelector('#recordings a[href="/play/vod?file=live%2Fweb-20261130-120000.flv"]'))`)

	if _, err := goPublish(t, r.testRelay, "live", "web?key="+key); err != nil {
		t.Fatalf("publish with the key created in the console: %v", err)
	}
	waitJS("the live stream with a kick button",
		`String([...document.querySelectorAll("#live button")].some(b => b.textContent === "Kick"))`)
	if got := js(`String(!!document.querySelector('#live a[href="/play/live/web"]'))`); got != "true" {
		t.Fatal("the live stream has no player link")
	}
	waitJS("the publish log row", `String(document.getElementById("log").textContent.includes("live/web"))`)

	if err := chromedp.Do(ctx, chromedp.Click(`#live button`)); err != nil { // "Kick"
		t.Fatalf("kick: %v", err)
	}
	waitJS("the kicked stream to leave the table", `String(!document.getElementById("live").textContent.includes("live/web"))`)
	if st, ok := r.stream(t, "live/web"); ok && st.Publisher != nil {
		t.Fatal("stream still has a publisher after the console's kick")
	}
	if got := js(`(() => { const b = [...document.querySelectorAll("#keys button")].find(b => b.textContent === "Revoke");
		if (!b) return "no revoke button"; b.click(); return "ok"; })()`); got != "ok" {
		t.Fatalf("revoke: %s", got)
	}
	waitJS("the key shown revoked", `String(document.getElementById("keys").textContent.includes("revoked"))`)
	if e := text("error"); e != "" {
		t.Fatalf("console error: %s", e)
	}
	_, err := goPublish(t, r.testRelay, "live", "web?key="+key)
	wantUnauthorized(t, err, "publish with the key revoked in the console")
}
