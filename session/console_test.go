package session_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/session"
)

// TestConsolePage: /console serves the embedded page and its script, with no
// external resources, a strict CSP, and without a database too (the page then shows
// the login form, and the login answers 503). The script sends the CSRF header on
// writes and only calls API routes that exist.
func TestConsolePage(t *testing.T) {
	t.Parallel()
	st, err := session.New(session.Config{}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(t.Context()) })
	mux := http.NewServeMux()
	st.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path, wantType string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), wantType) {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Fatalf("GET %s: CSP %q", path, csp)
		}
		return string(b)
	}
	page := get("/console", "text/html")
	for _, want := range []string{`id="login"`, `name="password"`, `<script src="/console/console.js">`, `id="keys"`, `id="live"`,
		`id="log"`, `id="recordings"`, `href="/streams"`} {
		if !strings.Contains(page, want) {
			t.Errorf("console page lacks %s", want)
		}
	}
	js := get("/console/console.js", "text/javascript")
	for name, body := range map[string]string{"page": page, "script": js} {
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(body); m != "" {
			t.Errorf("console %s references an external resource: %s", name, m)
		}
	}
	if !strings.Contains(js, `"X-CSRF-Token"`) {
		t.Error("console script does not send X-CSRF-Token")
	}
	// Every API route the script names is mounted (it answers something else than
	// the mux's 404/405 for its method).
	routes := map[string]string{ // path prefix in the script → method and a concrete path
		`"/api/login"`:                    "POST /api/login",
		`"/api/logout"`:                   "POST /api/logout",
		`"/api/session"`:                  "GET /api/session",
		`"/api/keys"`:                     "GET /api/keys",
		`"/api/live"`:                     "GET /api/live",
		`"/api/publishes"`:                "GET /api/publishes",
		`"/api/keys/" + k.id + "/revoke"`: "POST /api/keys/1/revoke",
		`"/api/keys/" + k.id)`:            "DELETE /api/keys/1",
		`"/api/streams/" + encodeURIComponent(app)`: "POST /api/streams/live/x/kick",
		`"/api/recordings"`:                         "GET /api/recordings",
	}
	// Mounted only with a database (TestConsoleAtRoot checks them there).
	dbOnly := map[string]bool{"GET /api/recordings": true}
	for frag, route := range routes {
		if !strings.Contains(js, frag) {
			t.Errorf("console script does not call %s", frag)
			continue
		}
		if dbOnly[route] {
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, the route is not mounted", route, resp.StatusCode)
		}
	}
	for _, lit := range regexp.MustCompile(`"/api/[^"]*"`).FindAllString(js, -1) {
		covered := false
		for frag := range routes {
			covered = covered || strings.HasPrefix(frag, lit)
		}
		if !covered {
			t.Errorf("console script calls %s, which this test does not check", lit)
		}
	}
}

// TestConsoleAtRoot: with a database the console is GET / — also on a mux that has
// a catch-all "/" of its own (cmd/mtrelay's media handlers), which keeps every other
// path, /streams included — and /console redirects to it; /api/recordings is
// mounted. Without a database, / stays the caller's.
func TestConsoleAtRoot(t *testing.T) {
	t.Parallel()
	catchAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Catch-All", "yes")
		w.Write([]byte("stream list or media"))
	})
	serve := func(st *session.Store) *httptest.Server {
		mux := http.NewServeMux()
		mux.Handle("/", catchAll)
		st.Mount(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(srv *httptest.Server, path string) (*http.Response, string) {
		t.Helper()
		resp, err := noRedirect.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	db := migrated(t)
	e := newEnv(t, db)
	srv := serve(e.store)
	resp, body := get(srv, "/")
	if resp.StatusCode != 200 || resp.Header.Get("X-Catch-All") != "" || !strings.Contains(body, `<script src="/console/console.js">`) {
		t.Fatalf("GET / with a database: %d catch-all %q, want the console page", resp.StatusCode, resp.Header.Get("X-Catch-All"))
	}
	if resp, _ := get(srv, "/console"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
		t.Fatalf("GET /console with a database: %d Location %q, want 302 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/streams", "/live/x.flv", "/play/live/x"} {
		if resp, _ := get(srv, p); resp.Header.Get("X-Catch-All") != "yes" {
			t.Errorf("GET %s with a database: not the catch-all's (%d)", p, resp.StatusCode)
		}
	}
	if resp, _ := get(srv, "/api/recordings"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/recordings without a session: %d, want 401", resp.StatusCode)
	}

	st, err := session.New(session.Config{}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(t.Context()) })
	srv = serve(st)
	if resp, _ := get(srv, "/"); resp.Header.Get("X-Catch-All") != "yes" {
		t.Fatalf("GET / without a database: %d, want the catch-all (the stream list)", resp.StatusCode)
	}
	if resp, body := get(srv, "/console"); resp.StatusCode != 200 || !strings.Contains(body, `id="login"`) {
		t.Fatalf("GET /console without a database: %d, want the page", resp.StatusCode)
	}
}
