package relay

import (
	"time"
)

// MediaInfo is what the protocol layer learned about the published media.
// Zero fields are unknown.
type MediaInfo struct {
	VideoCodec string  `json:"video_codec,omitempty"` // e.g. "H264"
	AudioCodec string  `json:"audio_codec,omitempty"` // e.g. "AAC"
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
}

// merge copies the non-zero fields of mi into m.
func (m *MediaInfo) merge(mi MediaInfo) {
	if mi.VideoCodec != "" {
		m.VideoCodec = mi.VideoCodec
	}
	if mi.AudioCodec != "" {
		m.AudioCodec = mi.AudioCodec
	}
	if mi.Width != 0 {
		m.Width = mi.Width
	}
	if mi.Height != 0 {
		m.Height = mi.Height
	}
	if mi.FPS != 0 {
		m.FPS = mi.FPS
	}
	if mi.SampleRate != 0 {
		m.SampleRate = mi.SampleRate
	}
	if mi.Channels != 0 {
		m.Channels = mi.Channels
	}
}

// StreamStats is a snapshot of one stream, served as JSON by /api/streams.
type StreamStats struct {
	Key         string         `json:"key"`
	Live        bool           `json:"live"`
	Publisher   *PublisherStat `json:"publisher,omitempty"`
	Media       MediaInfo      `json:"media"`
	BitrateIn   int64          `json:"bitrate_in_bps"`  // payload bits/s over the last ~5 s
	BitrateOut  int64          `json:"bitrate_out_bps"` // all subscribers' payload bits/s over the last ~5 s
	BytesIn     int64          `json:"bytes_in"`
	BytesOut    int64          `json:"bytes_out"`
	Subscribers map[string]int `json:"subscribers"` // by protocol (SubscribeOptions.Viewers for shared outputs)
	Dropped     int64          `json:"dropped_packets"`
	Evicted     int64          `json:"evicted_subscribers"`
	UptimeSec   float64        `json:"uptime_seconds"` // of the current publisher
}

// PublisherStat describes the current publisher.
type PublisherStat struct {
	Protocol string    `json:"protocol"`
	Remote   string    `json:"remote"`
	Since    time.Time `json:"since"`
}

// stats returns a snapshot of st.
func (st *stream) stats(now time.Time) StreamStats {
	ss := StreamStats{
		Key:         st.key,
		Subscribers: make(map[string]int),
		BytesIn:     st.bytesIn.Load(),
		Dropped:     st.dropped.Load(),
		Evicted:     st.evicted.Load(),
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if p := st.pub; p != nil {
		ss.Live = true
		ss.Publisher = &PublisherStat{Protocol: p.info.Protocol, Remote: p.info.Remote, Since: p.since}
		ss.UptimeSec = now.Sub(p.since).Seconds()
	}
	for _, s := range st.subs {
		proto := s.opts.Protocol
		if proto == "" {
			proto = "unknown"
		}
		n := 1
		if s.opts.Viewers != nil {
			n = s.opts.Viewers()
		}
		if n > 0 { // an output that stands for nobody now (a recorder, an idle HLS muxer) is not listed
			ss.Subscribers[proto] += n
		}
	}
	ss.BytesOut = st.bytesOutLocked()
	st.statMu.Lock()
	ss.Media = st.media
	ss.BitrateIn, ss.BitrateOut = st.meter.rates(now, ss.BytesIn, ss.BytesOut)
	st.statMu.Unlock()
	if !ss.Live {
		ss.BitrateIn = 0
	}
	return ss
}

// rateWindow is the span the bitrates are averaged over.
const rateWindow = 5 * time.Second

// meterSamples must cover more than rateWindow at one sample per second.
const meterSamples = 8

// meter turns the cumulative byte counters into bitrates. The publisher feeds it
// at most once per second from WritePacket, so no goroutine ticks it.
type meter struct {
	samples [meterSamples]sample // ring; next is the slot to write
	next, n int
}

type sample struct {
	t       time.Time
	in, out int64
}

// reset forgets the history and starts it with one sample.
func (m *meter) reset(now time.Time, in, out int64) {
	*m = meter{}
	m.add(now, in, out)
}

func (m *meter) add(now time.Time, in, out int64) {
	m.samples[m.next] = sample{t: now, in: in, out: out}
	m.next = (m.next + 1) % meterSamples
	m.n = min(m.n+1, meterSamples)
}

// rates returns bits/s from the newest sample at least rateWindow old (or the
// oldest sample there is) to the counters now.
func (m *meter) rates(now time.Time, in, out int64) (inBPS, outBPS int64) {
	var base *sample
	for i := 1; i <= m.n; i++ {
		base = &m.samples[(m.next-i+meterSamples)%meterSamples]
		if now.Sub(base.t) >= rateWindow {
			break
		}
	}
	if base == nil {
		return 0, 0
	}
	dt := now.Sub(base.t).Seconds()
	if dt < 0.5 {
		return 0, 0 // too short to mean anything
	}
	return int64(float64(in-base.in) * 8 / dt), int64(float64(out-base.out) * 8 / dt)
}
