package record_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/record"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/relaytest"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// frameMS is one video frame of the fixture (25 fps).
const frameMS = 40

// checkSameMedia checks that the recording at path has exactly the fixture's audio
// and video packets (same bytes, in order), with the fixture's timestamps moved by
// shift ms (the recording starts at 0).
func checkSameMedia(t *testing.T, path string) {
	t.Helper()
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, rtmptest.FixturePath(t)))
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, path))
	if len(gotV) != len(wantV) || len(gotA) != len(wantA) {
		t.Fatalf("recording has %d video and %d audio packets, the fixture %d and %d", len(gotV), len(gotA), len(wantV), len(wantA))
	}
	shift := min(wantV[0].DTS, wantA[0].DTS) - min(gotV[0].DTS, gotA[0].DTS)
	for _, c := range []struct {
		name      string
		got, want []rtmptest.ProbePacket
	}{{"video", gotV, wantV}, {"audio", gotA, wantA}} {
		for i := range c.want {
			g, w := c.got[i], c.want[i]
			if g.DataHash != w.DataHash || g.Keyframe != w.Keyframe {
				t.Fatalf("%s packet %d differs from the fixture's", c.name, i)
			}
			if g.DTS+shift != w.DTS || g.PTS+shift != w.PTS {
				t.Fatalf("%s packet %d: dts/pts %d/%d, want %d/%d (fixture shifted by %d)", c.name, i, g.DTS, g.PTS, w.DTS-shift, w.PTS-shift, shift)
			}
		}
	}
}

// TestRecordFixture: a publish of type record becomes one file with every packet of
// the fixture, timestamps from 0, the publisher's metadata, and duration and
// filesize right; List shows it.
func TestRecordFixture(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{})
	pkts := fixture(t)
	start := time.Now().UTC().Truncate(time.Second)
	e.publishAll(t, "live/fix", "record", pkts)
	e.waitIdle(t)

	list := e.list(t)
	if len(list) != 1 {
		t.Fatalf("List = %+v, want one recording", list)
	}
	r := list[0]
	if r.App != "live" || r.Stream != "fix" || r.Active || !strings.HasPrefix(r.Path, "live/fix-") ||
		r.StartedAt.Before(start) || r.StartedAt.After(time.Now()) {
		t.Errorf("recording %+v", r)
	}
	path := filepath.Join(e.dir, filepath.FromSlash(r.Path))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != fi.Size() {
		t.Errorf("List size %d, file %d", r.Size, fi.Size())
	}
	checkSameMedia(t, path)

	// ffmpeg's FLV muxer wrote 10.08 s (last PTS plus one frame): ours must agree
	// to within one frame.
	want := rtmptest.ProbeDuration(t, rtmptest.FixturePath(t))
	if got := rtmptest.ProbeDuration(t, path); got < want-frameMS || got > want+frameMS {
		t.Errorf("ffprobe duration %d ms, fixture %d ms", got, want)
	}
	if d := r.Duration.Milliseconds(); d < want-frameMS || d > want+frameMS {
		t.Errorf("List duration %v, fixture %d ms", r.Duration, want)
	}
	st := rtmptest.ProbeStreams(t, path)
	var v *rtmptest.ProbeStream
	for i := range st {
		if st[i].CodecType == "video" {
			v = &st[i]
		}
	}
	if len(st) != 2 || v == nil || v.Width != 640 || v.Height != 360 || v.CodecName != "h264" {
		t.Errorf("streams %+v", st)
	}
	tags, err := rtmptest.ReadFLV(path)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := rtmptest.DecodeAMF0(tags[0].Payload)
	if err != nil || len(vals) != 2 || vals[0] != "onMetaData" {
		t.Fatalf("first tag: %v %v", vals, err)
	}
	md, _ := vals[1].(rtmptest.ECMAArray)
	if md == nil {
		t.Fatalf("onMetaData holds %T", vals[1])
	}
	if md["filesize"] != float64(fi.Size()) || md["width"] != 640.0 || md["videocodecid"] != 7.0 || md["audiosamplerate"] != 44100.0 {
		t.Errorf("onMetaData %v; want filesize %d and the publisher's fields", md, fi.Size())
	}
	if got := e.rec.Stats(); got.Started != 1 || got.Failed != 0 || got.Active != 0 || got.BytesWritten != fi.Size() {
		t.Errorf("Stats %+v, want 1 started, %d bytes", got, fi.Size())
	}
	if l := e.logs.lines("recording finished"); len(l) != 1 || l[0]["stream"] != "live/fix" || l[0]["file"] != r.Path {
		t.Errorf("recording finished log: %v", l)
	}
}

// TestNotRecorded: a live publish with no matching pattern is not recorded; the
// record subscriber counts as no viewer.
func TestNotRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{Patterns: []string{"event/*"}})
	p := e.publish(t, "live/x", "live")
	p2 := e.publish(t, "event/y", "live")
	if ss, _ := e.hub.Stream("event/y"); ss.Subscribers[record.Protocol] != 0 {
		t.Errorf("recorder counted as %d viewers", ss.Subscribers[record.Protocol])
	}
	if ss, _ := e.hub.Stream("live/x"); len(ss.Subscribers) != 0 {
		t.Errorf("live/x has subscribers %v, want none", ss.Subscribers)
	}
	p.WritePacket(fixture(t)[0])
	p2.WritePacket(fixture(t)[0])
	p.Close()
	p2.Close()
	e.waitIdle(t)
	list := e.list(t)
	if len(list) != 1 || list[0].Stream != "y" {
		t.Fatalf("List = %+v, want event/y only", list)
	}
}

// TestAppend: a publish of type append continues the newest file of its stream,
// with timestamps going on after it; with no file it starts one; a newest file that
// is not FLV is left alone and a new one started, with a log line.
func TestAppend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{})
	pkts := fixture(t)
	e.publishAll(t, "live/a", "record", pkts)
	e.waitIdle(t)
	e.publishAll(t, "live/a", "append", pkts)
	e.waitIdle(t)
	list := e.list(t)
	if len(list) != 1 {
		t.Fatalf("List = %+v, want one file", list)
	}
	path := filepath.Join(e.dir, filepath.FromSlash(list[0].Path))
	if s := e.rec.Stats(); s.Started != 2 || s.BytesWritten != list[0].Size {
		t.Errorf("Stats %+v; want 2 started and the file's %d bytes written", s, list[0].Size)
	}
	wantV, wantA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, rtmptest.FixturePath(t)))
	gotV, gotA := rtmptest.MediaPackets(rtmptest.ProbePackets(t, path))
	if len(gotV) != 2*len(wantV) || len(gotA) != 2*len(wantA) {
		t.Fatalf("appended file has %d/%d video/audio packets, want %d/%d", len(gotV), len(gotA), 2*len(wantV), 2*len(wantA))
	}
	for i := 1; i < len(gotV); i++ {
		if gotV[i].DTS <= gotV[i-1].DTS {
			t.Fatalf("video DTS %d after %d at packet %d: timestamps do not go on", gotV[i].DTS, gotV[i-1].DTS, i)
		}
	}
	n := len(wantV)
	if gap := gotV[n].DTS - gotV[n-1].DTS; gap <= 0 || gap > 4*frameMS {
		t.Errorf("gap between the sessions %d ms", gap)
	}
	fix := rtmptest.ProbeDuration(t, rtmptest.FixturePath(t))
	if got := rtmptest.ProbeDuration(t, path); got < 2*fix-2*frameMS || got > 2*fix+2*frameMS {
		t.Errorf("duration %d ms, want about %d", got, 2*fix)
	}

	// No file yet: append starts one.
	e.publishAll(t, "live/b", "append", pkts[:20])
	e.waitIdle(t)
	// A newest file that is not FLV: left alone, a new file is started.
	bad := filepath.Join(e.dir, "live", "c-20200101-000000.flv")
	if err := os.WriteFile(bad, []byte("not flv at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.publishAll(t, "live/c", "append", pkts[:20])
	e.waitIdle(t)
	if b, _ := os.ReadFile(bad); string(b) != "not flv at all" {
		t.Error("the unreadable file was changed")
	}
	var b, c int
	for _, r := range e.list(t) {
		switch r.Stream {
		case "b":
			b++
		case "c":
			c++
		}
	}
	if b != 1 || c != 2 {
		t.Errorf("files: %d of live/b (want 1), %d of live/c (want 2: the bad one and a new one)", b, c)
	}
	l := e.logs.lines("append: no recording to continue, starting a new file")
	if len(l) != 2 || !strings.Contains(l[1]["reason"].(string), "not an FLV file") {
		t.Errorf("append log lines: %v", l)
	}
}

// TestAppendAfterCrash: append to a file cut in the middle of a tag (a crash) cuts
// the torn tag and goes on from there.
func TestAppendAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{})
	pkts := fixture(t)
	e.publishAll(t, "live/a", "record", pkts[:200])
	e.waitIdle(t)
	p := filepath.Join(e.dir, filepath.FromSlash(e.list(t)[0].Path))
	fi, _ := os.Stat(p)
	if err := os.Truncate(p, fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	e.publishAll(t, "live/a", "append", pkts[:200])
	e.waitIdle(t)
	tags, err := rtmptest.ReadFLV(p)
	if err != nil {
		t.Fatal(err)
	}
	// onMetaData (with the first session's metadata packet in it), 198 more of
	// the first session (the last one was torn), then the second session's 200
	// (its metadata as a tag of its own).
	if len(tags) != 1+198+200 {
		t.Errorf("%d tags, want %d", len(tags), 1+198+200)
	}
	rtmptest.ProbePackets(t, p) // no errors
}

// TestPatterns: --record patterns decide which publishes are recorded; SetPatterns
// changes that for later publishes; bad patterns are refused with the old ones
// kept.
func TestPatterns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{Patterns: []string{"live/*"}})
	pkts := fixture(t)[:10]
	e.publishAll(t, "live/one", "live", pkts)
	e.publishAll(t, "other/two", "", pkts)
	e.publishAll(t, "other/three", "record", pkts)
	e.waitIdle(t)
	if err := e.rec.SetPatterns([]string{"live/[", "x"}); err == nil {
		t.Error("SetPatterns accepted a bad pattern")
	}
	if got := e.rec.Patterns(); got != "live/*" {
		t.Errorf("patterns after a refused SetPatterns: %q", got)
	}
	if err := e.rec.SetPatterns([]string{"none"}); err != nil {
		t.Fatal(err)
	}
	e.publishAll(t, "live/four", "live", pkts)
	if err := e.rec.SetPatterns([]string{"all"}); err != nil {
		t.Fatal(err)
	}
	e.publishAll(t, "x/five", "live", pkts)
	e.waitIdle(t)
	var got []string
	for _, r := range e.list(t) {
		got = append(got, r.App+"/"+r.Stream)
	}
	want := map[string]bool{"live/one": true, "other/three": true, "x/five": true}
	if len(got) != len(want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	for _, k := range got {
		if !want[k] {
			t.Fatalf("recorded %v, want %v", got, want)
		}
	}
}

// TestQueueOverflow: a recording whose writer is held up (a slow disk) stops when
// its queue is full, with a log line; the stream and its player get everything;
// what was written is a valid file.
func TestQueueOverflow(t *testing.T) {
	t.Parallel()
	var block atomic.Bool
	release := make(chan struct{})
	e := newEnv(t, record.Config{MaxQueueBytes: 64 << 10}, func(r *record.Recorder) {
		record.SetWriteHook(r, func() {
			if block.Load() {
				<-release
			}
		})
	})
	pkts := fixture(t)
	pl := startPlayer(t, e.hub, "live/slow")
	p := e.publish(t, "live/slow", "record")
	for _, pk := range pkts[:10] {
		p.WritePacket(pk)
	}
	waitFor(t, "the file", func() bool { return len(e.list(t)) == 1 })
	block.Store(true)
	for _, pk := range pkts[10:] {
		p.WritePacket(pk)
	}
	waitFor(t, "the record subscriber to leave", func() bool {
		ss, _ := e.hub.Stream("live/slow")
		_, ok := ss.Subscribers[record.Protocol]
		return !ok
	})
	close(release)
	e.waitIdle(t)
	// The stream goes on: more packets reach the player.
	for _, pk := range pkts[len(pkts)-5:] {
		p.WritePacket(&relay.Packet{Kind: pk.Kind, Timestamp: pk.Timestamp + 20000, Keyframe: pk.Keyframe, Payload: pk.Payload})
	}
	p.Close()
	want := counts(pkts)
	waitFor(t, "the player to get every packet", func() bool {
		return pl.count(relay.KindVideo) == want[relay.KindVideo]+countKind(pkts[len(pkts)-5:], relay.KindVideo) &&
			pl.count(relay.KindAudio) == want[relay.KindAudio]+countKind(pkts[len(pkts)-5:], relay.KindAudio)
	})
	l := e.logs.lines("recording stopped; the stream goes on")
	if len(l) != 1 || !strings.Contains(l[0]["reason"].(string), "queue full") || l[0]["stream"] != "live/slow" || l[0]["file"] == "" {
		t.Fatalf("log: %v", l)
	}
	if s := e.rec.Stats(); s.Failed != 1 {
		t.Errorf("Stats %+v, want 1 failed", s)
	}
	rtmptest.ProbePackets(t, filepath.Join(e.dir, filepath.FromSlash(e.list(t)[0].Path)))
}

func countKind(pkts []*relay.Packet, k relay.Kind) int { return counts(pkts)[k] }

// TestCreateFails: a recording whose file cannot be created stops with a log line;
// the stream is not affected and later recordings still try.
func TestCreateFails(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, record.Config{Dir: filepath.Join(notDir, "recordings"), Patterns: []string{"all"}})
	pkts := fixture(t)[:30]
	pl := startPlayer(t, e.hub, "live/x")
	e.publishAll(t, "live/x", "", pkts)
	e.waitIdle(t)
	waitFor(t, "the player", func() bool { return pl.count(relay.KindVideo) == countKind(pkts, relay.KindVideo) })
	l := e.logs.lines("recording stopped; the stream goes on")
	if len(l) != 1 || !strings.Contains(l[0]["reason"].(string), "not a directory") {
		t.Fatalf("log: %v", l)
	}
	if _, err := e.rec.List(); err == nil {
		t.Error("List of a directory under a file succeeded")
	}
}

// TestCloseFinishesFiles: Close while streams are live ends their recordings
// cleanly (metadata fixed); the streams go on; later publishes are not recorded.
func TestCloseFinishesFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{Patterns: []string{"all"}})
	pkts := fixture(t)
	p := e.publish(t, "live/c", "")
	defer p.Close()
	for _, pk := range pkts[:100] {
		p.WritePacket(pk)
	}
	waitFor(t, "the file", func() bool { return len(e.list(t)) == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pk := range pkts[100:] {
		p.WritePacket(pk)
	}
	list := e.list(t)
	if len(list) != 1 || list[0].Active || list[0].Duration < time.Second || list[0].Duration > 2500*time.Millisecond {
		t.Fatalf("List after Close: %+v, want one finished recording of about 1.6 s", list)
	}
	q := e.publish(t, "live/d", "record")
	q.Close()
	if len(e.list(t)) != 1 {
		t.Error("a publish after Close was recorded")
	}
}

// fakeEvents is a recording event log that remembers its calls.
type fakeEvents struct {
	mu      sync.Mutex
	started []record.Recording
	owners  []string
	ended   []record.Recording
	ids     []int64
	block   chan struct{} // if not nil, RecordingStarted waits for it or its ctx
}

func (f *fakeEvents) RecordingStarted(ctx context.Context, r record.Recording, owner string) (int64, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, r)
	f.owners = append(f.owners, owner)
	return int64(len(f.started)), nil
}

func (f *fakeEvents) RecordingEnded(ctx context.Context, id int64, r record.Recording) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, id)
	f.ended = append(f.ended, r)
	return nil
}

// TestEvents: the event log hears each recording's start (path, owner) and end
// (size, duration); a log that does not answer holds up nothing and times out.
func TestEvents(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{}
	e := newEnv(t, record.Config{Events: ev})
	pkts := fixture(t)
	e.publishAll(t, "live/ev", "record", pkts)
	e.waitIdle(t)
	waitFor(t, "the end event", func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.ended) == 1 })
	r := e.list(t)[0]
	ev.mu.Lock()
	if ev.started[0].Path != r.Path || !ev.started[0].Active || ev.owners[0] != "alice" || ev.ids[0] != 1 ||
		ev.ended[0].Path != r.Path || ev.ended[0].Size != r.Size || ev.ended[0].Duration != r.Duration || ev.ended[0].Active {
		t.Errorf("events: started %+v (owner %q), ended %+v (id %d); file %+v", ev.started[0], ev.owners[0], ev.ended[0], ev.ids[0], r)
	}
	ev.mu.Unlock()

	slow := &fakeEvents{block: make(chan struct{})}
	e2 := newEnv(t, record.Config{Events: slow, EventTimeout: 100 * time.Millisecond})
	e2.publishAll(t, "live/slowdb", "record", pkts)
	e2.waitIdle(t)
	if l := e2.list(t); len(l) != 1 || l[0].Active {
		t.Fatalf("List = %+v", l)
	}
	waitFor(t, "the event timeout log", func() bool { return len(e2.logs.lines("recording start not logged")) == 1 })
}

// TestListSkipsOthers: List shows only recording names in app directories, no
// symlinks, and an empty list for a missing directory.
func TestListSkipsOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{Dir: filepath.Join(t.TempDir(), "missing")})
	if l := e.list(t); l == nil || len(l) != 0 {
		t.Fatalf("List of a missing dir = %#v, want empty", l)
	}
	e.publishAll(t, "live/s-1", "record", fixture(t)[:40])
	e.waitIdle(t)
	live := filepath.Join(e.dir, "live")
	for _, name := range []string{"notes.txt", "x.flv", "y-2026-01-01.flv"} {
		os.WriteFile(filepath.Join(live, name), nil, 0o644)
	}
	os.Symlink("/etc/passwd", filepath.Join(live, "z-20260101-000000.flv"))
	os.WriteFile(filepath.Join(e.dir, "stray-20260101-000000.flv"), nil, 0o644) // not in an app directory
	os.Symlink(live, filepath.Join(e.dir, "linked"))                            // an app directory that is a symlink
	l := e.list(t)
	if len(l) != 1 || l[0].Stream != "s-1" || l[0].Duration <= 0 {
		t.Fatalf("List = %+v, want the one recording of live/s-1 with a duration", l)
	}
}

// TestConcurrentPublishes records several streams at once and reloads patterns
// meanwhile (for -race).
func TestConcurrentPublishes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, record.Config{Patterns: []string{"all"}})
	pkts := fixture(t)[:120]
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			key := "live/c" + string(rune('a'+i))
			for range 3 {
				e.publishAll(t, key, "append", pkts)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			_ = e.rec.SetPatterns([]string{"all"})
			_, _ = e.rec.List()
			_ = e.rec.Stats()
		}
	})
	wg.Wait()
	e.waitIdle(t)
	if l := e.list(t); len(l) != 4 {
		t.Fatalf("List = %+v, want 4 files (append)", l)
	}
	if s := e.rec.Stats(); s.Started != 12 || s.Failed != 0 {
		t.Errorf("Stats %+v", s)
	}
}

// TestImports enforces doc.go: of mtrelay, only relay and httptunnel/flv; no rtmp,
// no go-rtmp, no session.
func TestImports(t *testing.T) {
	t.Parallel()
	relaytest.CheckDeps(t, "record",
		"github.com/mtrelay/mtrelay/relay",
		"github.com/mtrelay/mtrelay/httptunnel/flv",
		"github.com/mtrelay/mtrelay/httptunnel/record")
}
