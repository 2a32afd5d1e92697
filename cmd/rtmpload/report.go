package main

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"time"
)

// Report is the outcome of one run; its JSON form is what -json prints.
type Report struct {
	Label    string  `json:"label,omitempty"`
	Proto    string  `json:"proto"`
	Players  int     `json:"players"`
	Input    string  `json:"input"`
	HoldSec  float64 `json:"hold_s"`
	StartUTC string  `json:"start_utc"`

	Connected   int            `json:"connected"`
	Failed      int            `json:"failed"`       // never played
	Dropped     int            `json:"dropped"`      // played, then lost the connection before the window ended
	FailReasons map[string]int `json:"fail_reasons"` // error text (first 80 bytes) → players

	StreamMbps      float64 `json:"stream_mbps"`       // audio+video payload bitrate of the input file
	SentMbps        float64 `json:"sent_mbps"`         // payload the publisher sent in the window
	SentVideoFrames int     `json:"sent_video_frames"` // in the window
	SentAudioFrames int     `json:"sent_audio_frames"`

	// Per connected player, over the window.
	VideoFrames Dist `json:"video_frames"`
	AudioFrames Dist `json:"audio_frames"`
	WireBytes   Dist `json:"wire_bytes"`
	// VideoDeliveredPct is 100 × the video frames received by all connected
	// players / (connected × frames sent); MinPlayerVideoPct the worst player.
	VideoDeliveredPct float64 `json:"video_delivered_pct"`
	MinPlayerVideoPct float64 `json:"min_player_video_pct"`
	PlayersBelow995   int     `json:"players_below_99_5_pct"`
	DeliveredMbps     float64 `json:"delivered_mbps"` // all players' wire bytes in the window
	ExpectedMbps      float64 `json:"expected_mbps"`  // connected × sent_mbps (payload only)

	LatencyMs      Pct     `json:"latency_ms"`          // publisher send → player receive, video frames
	ConnectMs      Pct     `json:"connect_ms"`          // dial → play sent
	JoinKeyframeMs Pct     `json:"join_keyframe_ms"`    // play sent (HTTP-FLV: FLV header received) → first video key frame
	JoinFirstMs    Pct     `json:"join_first_media_ms"` // play sent → first audio/video message
	FirstIsKeyPct  float64 `json:"first_video_is_key_pct"`
	MaxGapMs       Pct     `json:"max_gap_ms"` // per player longest time between two frames; percentiles over players
	// MaxGapAtSec is when each player's longest gap ended, in seconds into
	// the window: a narrow spread means one stall hit every player at once.
	MaxGapAtSec     Pct     `json:"max_gap_at_s"`
	PublisherLateMs float64 `json:"publisher_late_ms"` // worst lateness of a send against the file's clock

	ServerPID    int     `json:"server_pid,omitempty"`
	ServerCPUPct float64 `json:"server_cpu_pct"` // (utime+stime)/wall over the window, -server-pid
	ServerRSSMB  float64 `json:"server_rss_mb"`  // VmRSS at the end of the window
	ServerHWMMB  float64 `json:"server_hwm_mb"`  // VmHWM (peak RSS) at the end of the window
	// ServerAnonMB and ServerFileMB split ServerRSSMB: private memory (heap, stacks)
	// and mapped files (the executable and libraries: clean, shared page cache).
	ServerAnonMB float64 `json:"server_rss_anon_mb"`
	ServerFileMB float64 `json:"server_rss_file_mb"`
	// ServerCtxSwPerSec is the server's context switches per second over the window,
	// all threads.
	ServerCtxSwPerSec float64 `json:"server_ctxsw_per_s"`
	ServerErr         string  `json:"server_err,omitempty"`

	// CoreBusyPct is every core's busy time over the window, all processes
	// together (/proc/stat): a server core much busier than the server's own
	// CPU% means other processes competed with it, and the run is noisy.
	CoreBusyPct []float64 `json:"core_busy_pct"`

	CPUPct     float64 `json:"loadgen_cpu_pct"` // this process, (user+sys)/wall over the window
	CPUUserSec float64 `json:"loadgen_user_s"`
	CPUSysSec  float64 `json:"loadgen_sys_s"`
	MaxRSSMB   float64 `json:"loadgen_maxrss_mb"`
}

// Dist is the spread of a per-player count.
type Dist struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// Pct holds percentiles of a sample, in milliseconds.
type Pct struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func dist(v []float64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	slices.Sort(v)
	return Dist{Min: v[0], Median: v[len(v)/2], Max: v[len(v)-1]}
}

// pct returns nearest-rank percentiles of v (sorted in place).
func pct(v []float64) Pct {
	if len(v) == 0 {
		return Pct{}
	}
	slices.Sort(v)
	at := func(p float64) float64 {
		i := int(p*float64(len(v))+0.5) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	return Pct{N: len(v), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: v[len(v)-1]}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func newReport(cfg config, in *input, pub pubResult, res []playerResult, cpu cpuSample) *Report {
	hold := cfg.duration.Seconds()
	r := &Report{
		Label: cfg.label, Proto: cfg.proto, Players: cfg.players, Input: cfg.file, HoldSec: hold,
		StartUTC:        time.Now().Add(-cfg.duration - drain).UTC().Format(time.RFC3339),
		FailReasons:     map[string]int{},
		StreamMbps:      in.bitrate / 1e6,
		SentMbps:        float64(pub.bytes) * 8 / hold / 1e6,
		SentVideoFrames: pub.video,
		SentAudioFrames: pub.audio,
		PublisherLateMs: ms(pub.late),
		CPUUserSec:      cpu.user.Seconds(),
		CPUSysSec:       cpu.sys.Seconds(),
		MaxRSSMB:        float64(cpu.maxRSSKB) / 1024,
	}
	if cpu.wall > 0 {
		r.CPUPct = 100 * (cpu.user + cpu.sys).Seconds() / cpu.wall.Seconds()
	}
	for _, b := range cpu.coreBusyPct {
		r.CoreBusyPct = append(r.CoreBusyPct, math.Round(b*10)/10)
	}
	if cfg.serverPID != 0 {
		r.ServerPID = cfg.serverPID
		if cpu.serverErr != nil {
			r.ServerErr = cpu.serverErr.Error()
		} else if cpu.wall > 0 {
			r.ServerCPUPct = 100 * cpu.server.Seconds() / cpu.wall.Seconds()
			r.ServerRSSMB, r.ServerHWMMB = float64(cpu.serverRSS)/1024, float64(cpu.serverHWM)/1024
			r.ServerAnonMB, r.ServerFileMB = float64(cpu.serverAnon)/1024, float64(cpu.serverFile)/1024
			r.ServerCtxSwPerSec = float64(cpu.serverCtxSw) / cpu.wall.Seconds()
		}
	}
	var video, audio, wire, lat, conn, key, first, gap, gapAt []float64
	var videoSum, firstKey, firstSeen int
	r.MinPlayerVideoPct = 100
	for _, p := range res {
		if p.err != nil {
			r.Failed++
			r.FailReasons[reason(p.err)]++
			continue
		}
		r.Connected++
		if p.dropErr != nil {
			r.Dropped++
			r.FailReasons["dropped: "+reason(p.dropErr)]++
		}
		video = append(video, float64(p.video))
		audio = append(audio, float64(p.audio))
		wire = append(wire, float64(p.bytes))
		videoSum += p.video
		if pub.video > 0 {
			got := 100 * float64(p.video) / float64(pub.video)
			r.MinPlayerVideoPct = min(r.MinPlayerVideoPct, got)
			if got < 99.5 {
				r.PlayersBelow995++
			}
		}
		r.DeliveredMbps += float64(p.bytes) * 8 / hold / 1e6
		for _, l := range p.latencies {
			lat = append(lat, float64(l)/1e3)
		}
		conn = append(conn, ms(p.connect))
		if p.firstKeyframe >= 0 {
			key = append(key, ms(p.firstKeyframe))
		}
		if p.firstMedia >= 0 {
			first = append(first, ms(p.firstMedia))
			firstSeen++
			if p.firstIsKey {
				firstKey++
			}
		}
		gap = append(gap, ms(p.maxGap))
		gapAt = append(gapAt, p.maxGapAt.Seconds())
	}
	if r.Connected == 0 {
		r.MinPlayerVideoPct = 0
	}
	if r.Connected > 0 && pub.video > 0 {
		r.VideoDeliveredPct = 100 * float64(videoSum) / float64(r.Connected*pub.video)
	}
	if firstSeen > 0 {
		r.FirstIsKeyPct = 100 * float64(firstKey) / float64(firstSeen)
	}
	r.ExpectedMbps = float64(r.Connected) * r.SentMbps
	r.VideoFrames, r.AudioFrames, r.WireBytes = dist(video), dist(audio), dist(wire)
	r.MaxGapAtSec = pct(gapAt)
	r.LatencyMs, r.ConnectMs, r.JoinKeyframeMs, r.JoinFirstMs, r.MaxGapMs = pct(lat), pct(conn), pct(key), pct(first), pct(gap)
	return r
}

// addrRE matches the socket addresses in net errors, which differ per player.
var addrRE = regexp.MustCompile(`[0-9a-fA-F.:\[\]]+:[0-9]+(->[0-9a-fA-F.:\[\]]+:[0-9]+)?`)

// reason shortens an error to group players by it: addresses are elided and
// the text is cut at 100 bytes.
func reason(err error) string {
	s := addrRE.ReplaceAllString(err.Error(), "ADDR")
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// writeText prints r for people.
func (r *Report) writeText(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	name := r.Label
	if name == "" {
		name = "server"
	}
	p("rtmpload report: %s, %d %s players, %.0f s window, input %s (%.2f Mbit/s)", name, r.Players, r.Proto, r.HoldSec, r.Input, r.StreamMbps)
	p("  players        connected %d, failed %d, dropped %d", r.Connected, r.Failed, r.Dropped)
	if len(r.FailReasons) > 0 {
		keys := make([]string, 0, len(r.FailReasons))
		for k := range r.FailReasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys[:min(len(keys), 5)] {
			p("    %5d × %s", r.FailReasons[k], k)
		}
	}
	p("  sent           %.2f Mbit/s, %d video + %d audio frames", r.SentMbps, r.SentVideoFrames, r.SentAudioFrames)
	p("  video frames   per player min/median/max %.0f/%.0f/%.0f of %d (all players %.2f%%, worst %.2f%%, %d below 99.5%%)",
		r.VideoFrames.Min, r.VideoFrames.Median, r.VideoFrames.Max, r.SentVideoFrames, r.VideoDeliveredPct, r.MinPlayerVideoPct, r.PlayersBelow995)
	p("  audio frames   per player min/median/max %.0f/%.0f/%.0f of %d",
		r.AudioFrames.Min, r.AudioFrames.Median, r.AudioFrames.Max, r.SentAudioFrames)
	p("  bytes          per player min/median/max %s/%s/%s", mb(r.WireBytes.Min), mb(r.WireBytes.Median), mb(r.WireBytes.Max))
	p("  delivered      %.1f Mbit/s (wire) vs %.1f expected (connected × sent payload)", r.DeliveredMbps, r.ExpectedMbps)
	p("  latency        p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d video frames)", r.LatencyMs.P50, r.LatencyMs.P99, r.LatencyMs.Max, r.LatencyMs.N)
	p("  connect        p50 %.1f ms, p90 %.1f ms (dial → play sent)", r.ConnectMs.P50, r.ConnectMs.P90)
	p("  join→keyframe  p50 %.1f ms, p90 %.1f ms; join→first media p50 %.1f ms; first video frame a key frame: %.1f%%",
		r.JoinKeyframeMs.P50, r.JoinKeyframeMs.P90, r.JoinFirstMs.P50, r.FirstIsKeyPct)
	p("  max gap        p50 %.1f ms, p99 %.1f ms, max %.1f ms; ended at %.1f/%.1f/%.1f s into the window (p50/p90/max)",
		r.MaxGapMs.P50, r.MaxGapMs.P99, r.MaxGapMs.Max, r.MaxGapAtSec.P50, r.MaxGapAtSec.P90, r.MaxGapAtSec.Max)
	if r.ServerPID != 0 {
		p("  server pid %d  cpu %.1f%%, rss %.1f MB (anon %.1f, file %.1f), peak rss %.1f MB, %.0f context switches/s %s",
			r.ServerPID, r.ServerCPUPct, r.ServerRSSMB, r.ServerAnonMB, r.ServerFileMB, r.ServerHWMMB, r.ServerCtxSwPerSec, r.ServerErr)
	}
	p("  rtmpload       cpu %.1f%% (user %.2f s, sys %.2f s), max rss %.0f MB, publisher late ≤ %.1f ms",
		r.CPUPct, r.CPUUserSec, r.CPUSysSec, r.MaxRSSMB, r.PublisherLateMs)
	p("  cores busy     %v%% (all processes, per core)", r.CoreBusyPct)
}

func mb(b float64) string { return fmt.Sprintf("%.1fMB", b/1e6) }
