package record_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtrelay/mtrelay/httptunnel/record"
	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/rtmptest"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it when
// the test ends. Mounting needs root (CI runs the tests as root): without it the
// test fails and says so.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the disk-full test mounts a %s tmpfs and needs root (uid %d): run the tests as root, as CI does", size, os.Geteuid())
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -t tmpfs -o size=%s tmpfs %s: %v\n%s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// TestDiskFull records onto a 256 KiB tmpfs while players watch: when the disk is
// full the recording stops with a log line that says so, the file is cut at a whole
// tag and still reads, and the players get every packet, also after.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, "256k")
	// Registered after the mount: the recorder is closed before the unmount.
	e := newEnv(t, record.Config{Dir: filepath.Join(dir, "rec")})
	pkts := fixture(t)
	players := []*player{startPlayer(t, e.hub, "live/full"), startPlayer(t, e.hub, "live/full")}
	p := e.publish(t, "live/full", "record")
	for _, pk := range pkts {
		p.WritePacket(pk)
	}
	waitFor(t, "the recording to stop", func() bool { return e.rec.Stats().Failed == 1 })
	// The stream goes on after the recording stopped.
	extra := pkts[len(pkts)-20:]
	for _, pk := range extra {
		p.WritePacket(&relay.Packet{Kind: pk.Kind, Timestamp: pk.Timestamp + 20000, Keyframe: pk.Keyframe, Payload: pk.Payload})
	}
	p.Close()
	want := counts(pkts)
	for k, n := range counts(extra) {
		want[k] += n
	}
	for i, pl := range players {
		waitFor(t, "every packet at a player", func() bool {
			return pl.count(relay.KindVideo) == want[relay.KindVideo] && pl.count(relay.KindAudio) == want[relay.KindAudio] &&
				pl.count(relay.KindMetadata) == want[relay.KindMetadata]
		})
		if d := pl.sub.Stats().Dropped; d != 0 {
			t.Errorf("player %d: %d packets dropped", i, d)
		}
	}
	e.waitIdle(t)

	l := e.logs.lines("recording stopped; the stream goes on")
	if len(l) != 1 || l[0]["stream"] != "live/full" || l[0]["file"] == "" ||
		!strings.Contains(l[0]["reason"].(string), "no space left on device") {
		t.Fatalf("log lines: %v; want one saying no space left on device", l)
	}
	t.Logf("log: %v", l[0])
	list := e.list(t)
	if len(list) != 1 || list[0].Size == 0 {
		t.Fatalf("List = %+v", list)
	}
	path := filepath.Join(e.dir, filepath.FromSlash(list[0].Path))
	if _, err := rtmptest.ReadFLV(path); err != nil {
		t.Fatal(err)
	}
	v, _ := rtmptest.MediaPackets(rtmptest.ProbePackets(t, path)) // fails on any ffprobe error
	t.Logf("%d bytes, %d video packets recorded before the disk filled", list[0].Size, len(v))
}
