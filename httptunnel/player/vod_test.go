package player

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv/flvtest"
	"github.com/mtrelay/mtrelay/httptunnel/vod"
	"github.com/mtrelay/mtrelay/relay"
)

// TestVOD serves the VOD page and its fMP4 stream from a directory holding the
// fixture: from 8000 ms the rest of the file is within the lead, so the response
// ends at once; ffprobe reads the stream; bad names are 404.
func TestVOD(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := os.ReadFile(flvtest.FixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "live"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "live", "f.flv"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t))
	src, err := vod.New(vod.Config{Dirs: []string{dir}}, log)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := relay.New(relay.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{}, log, hub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	h.MountVOD(mux, vodSource{src})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close(t.Context()) })
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, body := get("/play/vod?file=live/f.flv"); resp.StatusCode != 200 || !bytes.Contains(body, []byte("/play/vod.mp4")) {
		t.Errorf("page: %d", resp.StatusCode)
	}
	for _, p := range []string{"/play/vod.mp4?file=..%2flive%2ff.flv", "/play/vod.mp4?file=live/none.flv", "/play/vod.mp4?file=%2Fetc%2Fpasswd"} {
		if resp, _ := get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	resp, body := get("/play/vod.mp4?file=live/f.flv&start=8000")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" || !bytes.Contains(body[:16], []byte("ftyp")) {
		t.Fatalf("stream: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if resp.Header.Get("X-Start") != "8000" || resp.Header.Get("X-Duration") == "" {
		t.Errorf("X-Start %q X-Duration %q", resp.Header.Get("X-Start"), resp.Header.Get("X-Duration"))
	}
	out := filepath.Join(t.TempDir(), "vod.mp4")
	os.WriteFile(out, body, 0o644)
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Fatal("ffprobe not found")
	}
	cmd := exec.CommandContext(t.Context(), ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", out)
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	// 8000..9960 ms: 50 frames, the last of which waits for a successor that never comes.
	if s := string(bytes.TrimSpace(got)); s != "49" {
		t.Errorf("ffprobe counted %s video frames, want 49", s)
	}
	if n := h.Viewers(); n != 0 {
		t.Errorf("%d viewers after the stream ended", n)
	}
}

// vodSource adapts *vod.Source as cmd/mtrelay does (a test may import vod; the
// package may not).
type vodSource struct{ src *vod.Source }

func (v vodSource) OpenVOD(name string) (VODFile, error) {
	f, err := v.src.OpenFile(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}
