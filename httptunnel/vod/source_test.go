package vod

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv/flvtest"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// testDirs makes a VOD directory and a record directory:
//
//	vod/live/fixture.flv            the fixture
//	vod/live/inside.flv  -> fixture.flv (symlink inside: served)
//	vod/live/outside.flv -> ../../secret/secret.flv (symlink out: refused)
//	vod/live/sub/                   a directory named like a file: not served
//	rec/live/rec.flv                the fixture, found in the second directory
//	secret/secret.flv               outside both
func testDirs(t *testing.T) (src *Source, fixture []byte) {
	t.Helper()
	fixture, err := os.ReadFile(flvtest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"vod/live/dir.flv", "rec/live", "secret"} {
		must(os.MkdirAll(filepath.Join(base, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(base, "vod/live/fixture.flv"), fixture, 0o644))
	must(os.WriteFile(filepath.Join(base, "rec/live/rec.flv"), fixture, 0o644))
	must(os.WriteFile(filepath.Join(base, "secret/secret.flv"), fixture, 0o644))
	must(os.Symlink("fixture.flv", filepath.Join(base, "vod/live/inside.flv")))
	must(os.Symlink("../../secret/secret.flv", filepath.Join(base, "vod/live/outside.flv")))
	must(os.Symlink(filepath.Join(base, "secret/secret.flv"), filepath.Join(base, "vod/live/absolute.flv")))
	src, err = New(Config{Dirs: []string{filepath.Join(base, "vod"), "", filepath.Join(base, "missing"), filepath.Join(base, "rec")}}, zerolog.New(zerolog.NewTestWriter(t)))
	must(err)
	return src, fixture
}

// nameCases is the traversal table shared by Open and the HTTP handler.
var nameCases = []struct {
	name string
	want error // nil: found
}{
	{"live/fixture.flv", nil},
	{"live/rec.flv", nil},    // second directory
	{"live/inside.flv", nil}, // symlink inside the directory
	{"live/FIXTURE.flv", ErrNotFound},
	{"live/outside.flv", ErrNotFound},  // symlink out of the directory
	{"live/absolute.flv", ErrNotFound}, // absolute symlink out
	{"live/dir.flv", ErrNotFound},      // a directory
	{"live/none.flv", ErrNotFound},
	{"../secret/secret.flv", ErrBadName},
	{"live/../../secret/secret.flv", ErrBadName},
	{"live/./fixture.flv", ErrBadName},
	{"/etc/passwd.flv", ErrBadName},
	{"live//fixture.flv", ErrBadName},
	{"live\\..\\fixture.flv", ErrBadName},
	{"live/fixture.flv\x00.flv", ErrBadName},
	{"live/fix\nture.flv", ErrBadName},
	{"live/fixture.mp4", ErrBadName},
	{"live/", ErrBadName},
	{"", ErrBadName},
	{"live/fixture.flv/", ErrBadName},
}

func TestOpen(t *testing.T) {
	t.Parallel()
	src, fixture := testDirs(t)
	for _, c := range nameCases {
		t.Run(c.name, func(t *testing.T) {
			f, fi, err := src.Open(c.name)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer f.Close()
				if fi.Size() != int64(len(fixture)) {
					t.Errorf("size %d, want %d", fi.Size(), len(fixture))
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
		})
	}
}

func TestPlayName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ app, name, want string }{
		{"live", "fixture", "live/fixture.flv"},
		{"live", "fixture.flv", "live/fixture.flv"},
		{"live", "flv:fixture", "live/fixture.flv"},
		{"live", "flv:fixture.flv?key=1", "live/fixture.flv"},
		{"live", "x.FLV", "live/x.FLV"},
		{"live", "../x", "live/../x.flv"}, // refused by Open
	} {
		if got := PlayName(c.app, c.name); got != c.want {
			t.Errorf("PlayName(%q, %q) = %q, want %q", c.app, c.name, got, c.want)
		}
	}
	src, _ := testDirs(t)
	f, err := src.OpenPlay("live", "flv:fixture")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := src.OpenPlay("live", "../../secret/secret"); !errors.Is(err, ErrBadName) {
		t.Errorf("OpenPlay(../../secret/secret): %v, want ErrBadName", err)
	}
}

// TestHandler serves the table over a ServeMux as the relay mounts it, including the
// percent-encoded forms of the bad names, and checks a byte range.
func TestHandler(t *testing.T) {
	t.Parallel()
	src, fixture := testDirs(t)
	mux := http.NewServeMux()
	src.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(t *testing.T, method, rawPath string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+rawPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	t.Run("whole", func(t *testing.T) {
		resp, b := get(t, "GET", "/vod/live/fixture.flv", nil)
		if resp.StatusCode != 200 || !bytes.Equal(b, fixture) || resp.Header.Get("Content-Type") != "video/x-flv" {
			t.Fatalf("status %d, %d bytes, type %q", resp.StatusCode, len(b), resp.Header.Get("Content-Type"))
		}
	})
	t.Run("range", func(t *testing.T) {
		resp, b := get(t, "GET", "/vod/live/fixture.flv", map[string]string{"Range": "bytes=100-199"})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, fixture[100:200]) {
			t.Fatalf("status %d, %d bytes", resp.StatusCode, len(b))
		}
		if cr := resp.Header.Get("Content-Range"); cr != "bytes 100-199/"+strconv.Itoa(len(fixture)) {
			t.Errorf("Content-Range %q", cr)
		}
	})
	t.Run("head", func(t *testing.T) {
		resp, b := get(t, "HEAD", "/vod/live/rec.flv", nil)
		if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(fixture)) {
			t.Fatalf("status %d, body %d, length %d", resp.StatusCode, len(b), resp.ContentLength)
		}
	})
	for _, p := range []string{
		"/vod/live/outside.flv", "/vod/live/absolute.flv", "/vod/live/dir.flv", "/vod/live/none.flv",
		"/vod/%2e%2e/secret/secret.flv", "/vod/live%2f..%2f..%2fsecret%2fsecret.flv", "/vod/..%2fsecret%2fsecret.flv",
		"/vod/live/%2e/fixture.flv", "/vod/%2fetc%2fpasswd.flv", "/vod/live%5c..%5cfixture.flv",
		"/vod/live/fixture.flv%00", "/vod/live/fixture.mp4",
	} {
		t.Run("refused "+p, func(t *testing.T) {
			resp, b := get(t, "GET", p, nil)
			if resp.StatusCode != http.StatusNotFound || bytes.Contains(b, []byte("FLV")) {
				t.Fatalf("status %d, %d bytes", resp.StatusCode, len(b))
			}
		})
	}
	// "/vod/../x" is cleaned by ServeMux into a redirect out of /vod/, never served.
	resp, _ := get(t, "GET", "/vod/../secret/secret.flv", nil)
	if resp.StatusCode == 200 {
		t.Errorf("/vod/../secret/secret.flv: 200")
	}
}

// TestImports enforces doc.go: relay, httptunnel/flv, the standard library and
// zerolog; never rtmp.
func TestImports(t *testing.T) {
	t.Parallel()
	relaytest.CheckDeps(t, "vod",
		"github.com/mtrelay/mtrelay/relay",
		"github.com/mtrelay/mtrelay/httptunnel/flv",
		"github.com/mtrelay/mtrelay/httptunnel/vod")
}

func TestFileKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"live/rec-20261130-120000.flv": "live/rec-20261130-120000",
		"live/a/b/c.FLV":               "live/c",
		"x.flv":                        "x",
	} {
		if got := FileKey(in); got != want {
			t.Errorf("FileKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHandlerAccess: with Config.Access, the chain is asked about every request (key,
// query, protocol "vod") and a refusal is 403.
func TestHandlerAccess(t *testing.T) {
	t.Parallel()
	src, _ := testDirs(t)
	var seen []relay.AccessRequest
	var mu sync.Mutex
	src.cfg.Access = relay.AccessFunc(func(_ context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		return relay.AccessDecision{Allow: req.Key != "live/fixture", Reason: "no"}, nil
	})
	mux := http.NewServeMux()
	src.Mount(mux)
	for path, want := range map[string]int{
		"/vod/live/fixture.flv?token=1": http.StatusForbidden,
		"/vod/live/rec.flv?token=2":     http.StatusOK,
		"/vod/live/none.flv":            http.StatusNotFound,
		"/vod/live/..%2fx.flv":          http.StatusNotFound, // refused before the chain
	} {
		rr := httptest.NewRecorder()
		mux.ServeHTTP(rr, httptest.NewRequest("GET", path, nil))
		if rr.Code != want {
			t.Errorf("%s: %d, want %d", path, rr.Code, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0].Protocol != "vod" || seen[0].Action != relay.ActionPlay {
		t.Fatalf("access requests %+v", seen)
	}
	for _, r := range seen {
		if r.Key == "live/rec" && r.Query != "token=2" {
			t.Errorf("query %q, want token=2", r.Query)
		}
	}
}
