package rtmptest

// This file drives real ffmpeg and ffprobe processes for end-to-end tests
// (STYLE.md §10: test against real peers over real sockets). Every process is
// started with exec.CommandContext(t.Context()), interrupted and reaped in
// t.Cleanup, and its stderr is logged when the test fails.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FixtureName is the path of the shared test stream relative to the module
// root. testdata/gen.sh makes it; testdata/README.md describes it.
const FixtureName = "testdata/fixture.flv"

// procStopGrace is how long Stop waits after SIGINT before it kills the process.
// ffmpeg finishes its output file on SIGINT, which takes well under a second.
const procStopGrace = 5 * time.Second

// toolPackages names the Debian package that provides each tool, for the
// message RequireTool fails with.
var toolPackages = map[string]string{
	"ffmpeg":  "ffmpeg",
	"ffprobe": "ffmpeg",
	"squid":   "squid",
}

// RequireTool returns the path of the executable name and fails the test if
// it is not installed. It never skips: CI must run every end-to-end test, and
// `make test` installs the tools. It also looks in /usr/sbin, which is not on
// a normal user's PATH but holds squid.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p, err := exec.LookPath(filepath.Join("/usr/sbin", name)); err == nil {
		return p
	}
	pkg := toolPackages[name]
	if pkg == "" {
		pkg = name
	}
	t.Fatalf("%s not found: run `make test` (installs Debian package %s)", name, pkg)
	return ""
}

// ModuleRoot returns the directory that holds go.mod, found by walking up
// from the working directory (a package directory under `go test`).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("rtmptest: getwd: %v", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("rtmptest: no go.mod in %s or any parent", dir)
		}
	}
}

// FixturePath returns the absolute path of testdata/fixture.flv.
func FixturePath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(ModuleRoot(t), FixtureName)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("rtmptest: fixture missing (regenerate with `bash testdata/gen.sh`): %v", err)
	}
	return p
}

// FreeAddr returns "127.0.0.1:PORT" for a port that was free a moment ago.
// Prefer passing a 127.0.0.1:0 listener to Serve; use FreeAddr only when a
// peer (ffmpeg -listen, squid) must bind the port itself.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rtmptest: free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("rtmptest: free port: %v", err)
	}
	return addr
}

// Proc is a running external process (ffmpeg) tied to a test.
type Proc struct {
	name   string    // immutable: label for errors and logs
	cmd    *exec.Cmd // immutable after Start; Process is signalled by Stop
	stderr *stderrBuffer
	done   chan struct{} // closed by the wait goroutine after err is set
	err    error         // written once by the wait goroutine, before done closes
}

// StartProc runs the executable path with args as a test peer. env is
// appended to the test's environment (e.g. "http_proxy=http://127.0.0.1:N").
// Stdout is discarded and stderr kept (see Proc.Stderr). The process gets
// SIGINT when the test ends, is killed 5 s later if still running, and its
// stderr is logged if the test failed.
func StartProc(t testing.TB, path string, args []string, env []string) *Proc {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), path, args...)
	// When t.Context is cancelled (just before cleanups run), ask politely
	// first so ffmpeg finalises its output; exec kills after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = procStopGrace
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &Proc{
		name:   filepath.Base(path),
		cmd:    cmd,
		stderr: &stderrBuffer{},
		done:   make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("rtmptest: start %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s %s\n--- stderr ---\n%s", p.name, strings.Join(args, " "), p.Stderr())
		}
	})
	return p
}

// Wait waits for the process to exit and returns its exit error (nil for
// status 0), or ctx's error if ctx ends first; the process keeps running then.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w", p.name, p.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.name, context.Cause(ctx))
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop sends SIGINT, which makes ffmpeg flush and close its output, waits up
// to 5 s, then kills the process. It returns once the process is reaped and
// is safe to call more than once.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	timer := time.NewTimer(procStopGrace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Stderr returns everything the process has written to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// PublishOptions tunes StartPublisher. The zero value publishes the fixture
// once at its native rate.
type PublishOptions struct {
	// Input is the file to publish. Default: FixturePath.
	Input string
	// Loop repeats the input forever (-stream_loop -1); stop it with Stop.
	Loop bool
	// ReadRate is the read speed as a multiple of real time (-readrate).
	// Default 0 means 1 (-re, as a live encoder sends). Use e.g. 4 to make
	// tests faster, or a negative value to send as fast as possible.
	ReadRate float64
	// InputArgs go before -i (input options).
	InputArgs []string
	// ExtraArgs go after "-c copy", before "-f flv URL" (output options).
	ExtraArgs []string
	// Env is added to the environment, e.g. "http_proxy=http://127.0.0.1:N"
	// (ffmpeg's rtmpt:// honours http_proxy).
	Env []string
}

// StartPublisher runs `ffmpeg -re -i fixture -c copy -f flv url`, an RTMP
// (rtmp://, rtmpt://) or file publisher. It exits by itself at the end of
// the input unless opts.Loop is set.
func StartPublisher(t testing.TB, url string, opts PublishOptions) *Proc {
	t.Helper()
	ffmpeg := RequireTool(t, "ffmpeg")
	input := opts.Input
	if input == "" {
		input = FixturePath(t)
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning"}
	switch {
	case opts.ReadRate == 0:
		args = append(args, "-re")
	case opts.ReadRate > 0:
		args = append(args, "-readrate", strconv.FormatFloat(opts.ReadRate, 'f', -1, 64))
	}
	if opts.Loop {
		args = append(args, "-stream_loop", "-1")
	}
	args = append(args, opts.InputArgs...)
	args = append(args, "-i", input, "-c", "copy")
	args = append(args, opts.ExtraArgs...)
	args = append(args, "-f", "flv", url)
	return StartProc(t, ffmpeg, args, opts.Env)
}

// RecordOptions tunes StartRecorder.
type RecordOptions struct {
	// InputArgs go before -i, e.g. {"-listen", "1"} to act as an RTMP
	// server, or {"-rw_timeout", "5000000"} to give up on a silent peer.
	InputArgs []string
	// ExtraArgs go after "-c copy", before "-f FORMAT out".
	ExtraArgs []string
	// Format is the output format. Default "flv".
	Format string
	// Env is added to the environment, e.g. "http_proxy=...".
	Env []string
}

// StartRecorder runs `ffmpeg -i url -c copy -f flv out`: a player that
// writes what it received to out, exiting when the stream ends (or on Stop,
// which still leaves a complete file). Probe out with ProbePackets or
// DecodeFrames after Wait. Only the first opts is used.
func StartRecorder(t testing.TB, url, out string, opts ...RecordOptions) *Proc {
	t.Helper()
	ffmpeg := RequireTool(t, "ffmpeg")
	var o RecordOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Format == "" {
		o.Format = "flv"
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-y"}
	args = append(args, o.InputArgs...)
	args = append(args, "-i", url, "-c", "copy")
	args = append(args, o.ExtraArgs...)
	args = append(args, "-f", o.Format, out)
	return StartProc(t, ffmpeg, args, o.Env)
}

// NoTS marks a packet timestamp that ffprobe reported as absent (N/A), like
// libav's AV_NOPTS_VALUE.
const NoTS = math.MinInt64

// ProbePacket is one demuxed packet as ffprobe -show_packets reports it.
type ProbePacket struct {
	StreamIndex int
	CodecType   string // "video", "audio", "data"
	// PTS, DTS and Duration are in the stream time base, which for FLV is
	// 1/1000, i.e. milliseconds. PTS and DTS are NoTS when absent.
	PTS, DTS, Duration int64
	Size               int
	Flags              string // e.g. "K_", "__"; "D" marks discard
	Keyframe           bool   // Flags contains "K"
	DataHash           string // "MD5:<hex>" of the payload: compares bytes across a relay
}

// ProbePackets runs ffprobe -show_packets on input (a file or URL) and
// returns its packets in demux order. It fails the test if ffprobe fails.
func ProbePackets(t testing.TB, input string, extra ...string) []ProbePacket {
	t.Helper()
	var out struct {
		Packets []struct {
			StreamIndex int    `json:"stream_index"`
			CodecType   string `json:"codec_type"`
			PTS         *int64 `json:"pts"`
			DTS         *int64 `json:"dts"`
			Duration    int64  `json:"duration"`
			Size        int    `json:"size,string"`
			Flags       string `json:"flags"`
			DataHash    string `json:"data_hash"`
		} `json:"packets"`
	}
	args := append([]string{"-show_packets", "-show_data_hash", "MD5"}, extra...)
	runFFprobe(t, input, args, &out)
	pkts := make([]ProbePacket, len(out.Packets))
	for i, p := range out.Packets {
		pkts[i] = ProbePacket{
			StreamIndex: p.StreamIndex,
			CodecType:   p.CodecType,
			PTS:         probeTS(p.PTS),
			DTS:         probeTS(p.DTS),
			Duration:    p.Duration,
			Size:        p.Size,
			Flags:       p.Flags,
			Keyframe:    strings.Contains(p.Flags, "K"),
			DataHash:    p.DataHash,
		}
	}
	return pkts
}

func probeTS(v *int64) int64 {
	if v == nil {
		return NoTS
	}
	return *v
}

// ProbeStream holds the codec parameters ffprobe -show_streams reports.
type ProbeStream struct {
	Index         int    `json:"index"`
	CodecType     string `json:"codec_type"` // "video", "audio", "data"
	CodecName     string `json:"codec_name"` // "h264", "aac"
	Profile       string `json:"profile"`    // "Main", "LC"
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	PixFmt        string `json:"pix_fmt"`
	HasBFrames    int    `json:"has_b_frames"` // reorder depth; 2 for the fixture
	Level         int    `json:"level"`
	AvgFrameRate  string `json:"avg_frame_rate"` // "25/1"
	SampleRate    int    `json:"sample_rate,string"`
	Channels      int    `json:"channels"`
	ChannelLayout string `json:"channel_layout"`
	TimeBase      string `json:"time_base"` // "1/1000" for FLV
	ExtradataSize int    `json:"extradata_size"`
}

// ProbeStreams runs ffprobe -show_streams on input and returns its streams
// in index order. It fails the test if ffprobe fails.
func ProbeStreams(t testing.TB, input string, extra ...string) []ProbeStream {
	t.Helper()
	var out struct {
		Streams []ProbeStream `json:"streams"`
	}
	runFFprobe(t, input, append([]string{"-show_streams"}, extra...), &out)
	return out.Streams
}

// MediaPackets splits probed packets by codec type, keeping their order.
func MediaPackets(pkts []ProbePacket) (video, audio []ProbePacket) {
	for _, p := range pkts {
		switch p.CodecType {
		case "video":
			video = append(video, p)
		case "audio":
			audio = append(audio, p)
		}
	}
	return video, audio
}

// ProbeDuration returns the format duration ffprobe reports for path, in ms. Unlike
// ProbePackets it tolerates ffprobe's warnings (a file cut short by a crash has
// some); it fails the test only if ffprobe fails or reports no duration.
func ProbeDuration(t testing.TB, path string) int64 {
	t.Helper()
	ffprobe := RequireTool(t, "ffprobe")
	out, err := exec.CommandContext(t.Context(), ffprobe, "-v", "error", "-of", "json", "-show_format", path).Output()
	if err != nil {
		t.Fatalf("ffprobe -show_format %s: %v", path, err)
	}
	var v struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("ffprobe -show_format %s: %v", path, err)
	}
	d, err := strconv.ParseFloat(v.Format.Duration, 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q of %s: %v", v.Format.Duration, path, err)
	}
	return int64(d*1000 + 0.5)
}

// runFFprobe runs `ffprobe -v error -of json args... input` and decodes its
// JSON output into v. Any error output fails the test.
func runFFprobe(t testing.TB, input string, args []string, v any) {
	t.Helper()
	ffprobe := RequireTool(t, "ffprobe")
	full := append([]string{"-hide_banner", "-v", "error", "-of", "json"}, args...)
	full = append(full, input)
	cmd := exec.CommandContext(t.Context(), ffprobe, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", strings.Join(full, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Fatalf("ffprobe %s reported errors:\n%s", strings.Join(full, " "), stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		t.Fatalf("ffprobe %s: decode json: %v", strings.Join(full, " "), err)
	}
}

// DecodeFrames fully decodes input (a file or URL) with ffmpeg and returns
// the number of decoded video and audio frames. extra are input options,
// placed before -i. It fails the test on any decode error; see Decode.
func DecodeFrames(t testing.TB, input string, extra ...string) (video, audio int) {
	t.Helper()
	ffmpeg := RequireTool(t, "ffmpeg")
	video, audio, err := Decode(t.Context(), ffmpeg, input, extra...)
	if err != nil {
		t.Fatalf("decode %s: %v", input, err)
	}
	return video, audio
}

// Decode is DecodeFrames without a testing.TB: ffmpeg is the executable's
// path. It returns an error if ffmpeg exits non-zero, logs anything at
// level error, or decodes no frame at all.
//
// The command is
//
//	ffmpeg -v error -xerror -err_detect explode [extra] -i input
//	       -map 0:v? -map 0:a? -fps_mode passthrough -f framecrc -
//
// framecrc writes one line per decoded frame, after a header that names
// each output stream's media type, so the counts need no parsing of
// -progress (which counts video only) or of ffprobe -count_frames (which
// does not fail on corrupt input). -err_detect explode makes the decoders
// return errors instead of concealing them, and -xerror turns the first one
// into a non-zero exit; -fps_mode passthrough stops ffmpeg from duplicating
// or dropping video frames to reach a constant rate.
func Decode(ctx context.Context, ffmpeg, input string, extra ...string) (video, audio int, err error) {
	args := []string{"-hide_banner", "-nostdin", "-v", "error", "-xerror", "-err_detect", "explode"}
	args = append(args, extra...)
	args = append(args, "-i", input,
		"-map", "0:v?", "-map", "0:a?", "-fps_mode", "passthrough", "-f", "framecrc", "-")
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("ffmpeg %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		return 0, 0, fmt.Errorf("ffmpeg %s reported errors:\n%s", strings.Join(args, " "), stderr.String())
	}
	return countFrameCRC(stdout.Bytes())
}

// countFrameCRC counts the frame lines of framecrc output per media type.
// Header lines look like "#media_type 0: video"; frame lines like
// "0,          0,          0,        1,   345600, 0x1a2b3c4d".
func countFrameCRC(out []byte) (video, audio int, err error) {
	kind := map[string]string{} // stream index → media type
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "#media_type "); ok {
			idx, typ, ok := strings.Cut(rest, ":")
			if !ok {
				return 0, 0, fmt.Errorf("framecrc: bad header %q", line)
			}
			kind[strings.TrimSpace(idx)] = strings.TrimSpace(typ)
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		idx, _, ok := strings.Cut(line, ",")
		if !ok {
			return 0, 0, fmt.Errorf("framecrc: bad line %q", line)
		}
		switch kind[strings.TrimSpace(idx)] {
		case "video":
			video++
		case "audio":
			audio++
		default:
			return 0, 0, fmt.Errorf("framecrc: frame of unknown stream %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("framecrc: %w", err)
	}
	if video == 0 && audio == 0 {
		return 0, 0, errors.New("framecrc: no frames decoded")
	}
	return video, audio, nil
}

// stderrBuffer is a bytes.Buffer safe for exec's copying goroutine to write
// while a test reads it.
type stderrBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *stderrBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *stderrBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
