package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// apiRecording is one entry of GET /api/recordings without a database.
type apiRecording struct {
	Path       string `json:"path"`
	App        string `json:"app"`
	Stream     string `json:"stream"`
	Size       int64  `json:"size"`
	StartedAt  string `json:"started_at"`
	DurationMS *int64 `json:"duration_ms"`
	Active     bool   `json:"active"`
}

// recordings fetches /api/recordings (with query, e.g. "?app=live").
func (r *testRelay) recordings(t *testing.T, query string) []apiRecording {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/api/recordings" + query)
	if err != nil {
		t.Fatalf("GET /api/recordings: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/recordings: %s", resp.Status)
	}
	var list []apiRecording
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("decode /api/recordings: %v", err)
	}
	return list
}

// waitRecording waits until /api/recordings (with query) lists exactly one finished
// recording and returns it.
func (r *testRelay) waitRecording(t *testing.T, query string) apiRecording {
	t.Helper()
	var list []apiRecording
	waitFor(t, 20*time.Second, "one finished recording in /api/recordings"+query, func() bool {
		list = r.recordings(t, query)
		return len(list) == 1 && !list[0].Active
	})
	return list[0]
}

// recordFixture starts a relay that records live/* into a temporary directory,
// publishes the fixture to live/rec with ffmpeg (8 times real time) within ctx, and
// returns the relay, the directory and the finished recording.
func recordFixture(ctx context.Context, t *testing.T) (*testRelay, string, apiRecording) {
	t.Helper()
	dir := t.TempDir()
	r := startRelay(t, func(c *Config) { c.Record = "live/*"; c.RecordDir = dir })
	pub := rtmptest.StartPublisher(t, r.rtmpURL("live/rec"), rtmptest.PublishOptions{ReadRate: 8})
	if err := pub.Wait(ctx); err != nil {
		t.Fatalf("ffmpeg publish: %v\n%s", err, pub.Stderr())
	}
	return r, dir, r.waitRecording(t, "?app=live")
}

// TestRecordE2E: with --record live/*, an ffmpeg publish of the fixture is recorded
// with every packet (same bytes, same timestamps relative to the start), the right
// duration, and is listed by /api/recordings; a Go client's publish of type record
// outside the patterns is recorded too.
func TestRecordE2E(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, dir, rec := recordFixture(ctx, t)
	path := filepath.Join(dir, filepath.FromSlash(rec.Path))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if rec.App != "live" || rec.Stream != "rec" || rec.Size != fi.Size() || rec.DurationMS == nil {
		t.Errorf("/api/recordings entry %+v (file %d bytes)", rec, fi.Size())
	}

	fixture := rtmptest.FixturePath(t)
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, fixture))
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, path))
	if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
		t.Fatalf("recording: %d video, %d audio packets; fixture %d, %d", len(gotV), len(gotA), len(wantV), len(wantA))
	}
	for i := range wantV {
		if gotV[i].DataHash != wantV[i].DataHash || gotV[i].PTS-gotV[i].DTS != wantV[i].PTS-wantV[i].DTS {
			t.Fatalf("video packet %d differs from the fixture's", i)
		}
	}
	for i := range wantA {
		if gotA[i].DataHash != wantA[i].DataHash {
			t.Fatalf("audio packet %d differs from the fixture's", i)
		}
	}
	if gotV[0].DTS != 0 && gotA[0].DTS != 0 {
		t.Errorf("recording starts at video %d / audio %d ms, want 0", gotV[0].DTS, gotA[0].DTS)
	}
	const frameMS = 40
	want := rtmptest.ProbeDuration(t, fixture)
	if got := rtmptest.ProbeDuration(t, path); got < want-frameMS || got > want+frameMS {
		t.Errorf("ffprobe duration %d ms, the fixture's %d ms", got, want)
	}
	if d := *rec.DurationMS; d < want-frameMS || d > want+frameMS {
		t.Errorf("/api/recordings duration %d ms, the fixture's %d ms", d, want)
	}
	rtmptest.DecodeFrames(t, path)

	// Publish type record asks for a recording where --record does not.
	c := r.connect(t, "rtmp", "other")
	if err := c.PublishType("cam", "record"); err != nil {
		t.Fatal(err)
	}
	if err := publishAll(ctx, c, fixtureTags(t)[:60], 0, newPacer(0, 0)); err != nil {
		t.Fatal(err)
	}
	other := r.waitRecording(t, "?app=other")
	if other.Stream != "cam" {
		t.Errorf("recording %+v", other)
	}
	rtmptest.ProbePackets(t, filepath.Join(dir, filepath.FromSlash(other.Path)))
	if l := r.recordings(t, ""); len(l) != 2 {
		t.Errorf("/api/recordings lists %d recordings, want 2", len(l))
	}
}

// TestRecordKill9: the relay, in a process of its own, recording a real-time ffmpeg
// publish is killed with SIGKILL; the file it leaves is read by ffprobe without an error and holds
// everything a player had received up to about a second before the kill.
func TestRecordKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rp := startRelayProc(t, relayChildBin(t), "--record", "all", "--record-dir", dir)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// A player joins first: it and the recording both start at the publisher's
	// first frame, so their timestamps agree.
	pl, err := dialConnect(ctx, rp.rtmpAddr, "live")
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if err := pl.Play("kill"); err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64 // latest video timestamp at the player, ms
	seen.Store(-1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			m, err := pl.ReadMedia(ctx)
			if err != nil {
				return
			}
			if m.TypeID == rtmptest.TypeVideo && int64(m.Timestamp) > seen.Load() {
				seen.Store(int64(m.Timestamp))
			}
		}
	}()
	defer func() { pl.Close(); <-readDone }()
	rtmptest.StartPublisher(t, "rtmp://"+rp.rtmpAddr+"/live/kill", rtmptest.PublishOptions{Loop: true})
	waitFor(t, 30*time.Second, "3 s of video at the player", func() bool { return seen.Load() >= 3000 })
	sent := seen.Load()
	if err := rp.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.cmd.Process.Wait(); err != nil {
		t.Fatal(err)
	}

	files, err := filepath.Glob(filepath.Join(dir, "live", "kill-*.flv"))
	if err != nil || len(files) != 1 {
		t.Fatalf("recordings after the kill: %v %v", files, err)
	}
	video, _ := rtmptest.MediaPackets(rtmptest.ProbePackets(t, files[0])) // fails on any ffprobe error
	if len(video) == 0 {
		t.Fatal("no video in the recording")
	}
	var last int64
	for _, p := range video {
		last = max(last, p.DTS)
	}
	lost := sent - last
	t.Logf("player had video up to %d ms at the kill, the file up to %d ms: %d ms missing; metadata duration %d ms",
		sent, last, lost, rtmptest.ProbeDuration(t, files[0]))
	if lost > 1500 {
		t.Errorf("the file misses the last %d ms the relay had received; want at most about 1 s", lost)
	}
}

// TestMountRecordingsDefersToSessions: when the session store already serves GET
// /api/recordings (it does with a database), mountRecordings leaves it alone; the
// reload helper changes the patterns.
func TestMountRecordingsDefersToSessions(t *testing.T) {
	t.Parallel()
	hub, err := relay.New(relay.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	cfg, err := parseConfig([]string{"--record-dir", t.TempDir()}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := newSessions(cfg, zerolog.Nop(), hub)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSessions(sess, cfg, zerolog.Nop())
	rec, err := newRecorder(cfg, zerolog.Nop(), hub, sess)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRecorder(rec, cfg, zerolog.Nop())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/recordings", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("/", http.NotFound)
	mountRecordings(mux, rec, zerolog.Nop()) // must neither panic nor take over
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/recordings", nil))
	if w.Code != http.StatusTeapot {
		t.Errorf("GET /api/recordings: %d, want the session store's handler", w.Code)
	}

	cfg.Record = "live/*"
	if err := reloadRecordPatterns(rec, cfg); err != nil || rec.Patterns() != "live/*" {
		t.Errorf("reload: %v, patterns %q", err, rec.Patterns())
	}
	cfg.Record = "all,live/*"
	if err := reloadRecordPatterns(rec, cfg); err == nil || rec.Patterns() != "live/*" {
		t.Errorf("bad reload: %v, patterns %q", err, rec.Patterns())
	}
}

// TestRecordDatabase: with a database, a keyed publish's recording is written to
// mtrelay.recordings (owner: the key's owner) when it starts and when it ends, and
// /api/recordings shows it to its owner only, with the file's size and duration.
func TestRecordDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startDBRelay(t, func(c *Config) { c.Record = "all"; c.RecordDir = dir })
	alice := r.db.CreateRole(t, "alice", "alicepw", "mtrelay_user")
	bob := r.db.CreateRole(t, "bob", "bobpw", "mtrelay_user")
	ca, cb := r.login(t, alice, "alicepw"), r.login(t, bob, "bobpw")
	k := ca.createKey("live", "cam")

	c, err := goPublish(t, r.testRelay, "live", "cam?key="+k.Key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := publishAll(ctx, c, fixtureTags(t)[:120], 0, newPacer(0, 0)); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Path       string  `json:"path"`
		Owner      *string `json:"owner"`
		Bytes      int64   `json:"bytes"`
		DurationMS int64   `json:"duration_ms"`
		Active     bool    `json:"active"`
	}
	var rows []row
	waitFor(t, 20*time.Second, "alice's finished recording in /api/recordings", func() bool {
		code, b := ca.do("GET", "/api/recordings", nil)
		rows = nil
		return code == http.StatusOK && json.Unmarshal(b, &rows) == nil && len(rows) == 1 && !rows[0].Active
	})
	fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rows[0].Path)))
	if err != nil {
		t.Fatalf("the listed recording %q: %v", rows[0].Path, err)
	}
	if rows[0].Owner == nil || *rows[0].Owner != alice || rows[0].Bytes != fi.Size() || rows[0].DurationMS < 1000 {
		t.Errorf("row %+v; want owner %s, %d bytes, a duration", rows[0], alice, fi.Size())
	}
	if code, b := cb.do("GET", "/api/recordings", nil); code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("bob's /api/recordings: %d %s, want []", code, b)
	}
	resp, err := http.Get("http://" + r.httpAddr + "/api/recordings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/recordings without a session: %s, want 401", resp.Status)
	}
}

// relayChildEnv marks a run of this test binary as a relay child (relayChildBin).
const relayChildEnv = "MTRELAY_TEST_RELAY_CHILD"

// TestRecordRelayChild is not a test of its own: in a process started through
// relayChildBin it runs the relay (realMain) with the flags after "--", and exits
// with its exit code. Otherwise it does nothing.
func TestRecordRelayChild(t *testing.T) {
	if os.Getenv(relayChildEnv) != "1" {
		return
	}
	os.Exit(realMain(flag.Args(), os.Getenv, os.Stderr))
}

// relayChildBin returns an executable that runs the relay in a child process of this
// test binary (TestRecordRelayChild) with the flags it is given: a real process to
// kill -9, without the ~10 s of a go build and link.
func relayChildBin(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "mtrelay")
	body := fmt.Sprintf("#!/bin/sh\n%s=1 exec '%s' -test.run='^TestRecordRelayChild$' -- \"$@\"\n", relayChildEnv, exe)
	if strings.ContainsRune(exe, '\'') {
		t.Fatalf("test binary path %q has a quote", exe)
	}
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}
