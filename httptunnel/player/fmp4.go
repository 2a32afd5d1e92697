package player

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// Errors of the fMP4 muxer.
var (
	// ErrStreamEnded means the publisher left or changed codec parameters: the page
	// reconnects.
	ErrStreamEnded = errors.New("player: stream ended")
)

const (
	videoTrackID = 1
	audioTrackID = 2
	videoScale   = 90000
)

// sample is a frame waiting for the next one of its track, which gives its duration.
type sample struct {
	dts     int64 // in track time scale
	pts     int64
	key     bool
	payload []byte // AVCC (4-byte lengths) or raw AAC; aliases the hub's payload
}

// muxer turns a subscriber's frames into an fMP4 byte stream: Init once the codecs are
// known, then one moof+mdat per Frames call. Owned by one viewer goroutine.
type muxer struct {
	videoCfg, audioCfg []byte // sequence header bodies
	avc                flv.AVCConfig
	asc                mpeg4audio.AudioSpecificConfig
	hasVideo, hasAudio bool
	started            bool

	pendV, pendA   *sample // last sample of each track, waiting for its duration
	outV, outA     []*fmp4.Sample
	baseV, baseA   uint64 // base time of outV/outA[0]
	seq            uint32
	buf            seekablebuffer.Buffer
	nalus          [][]byte
	avcc           []byte // scratch for re-framing NAL units with 4-byte lengths
	convertLengths bool   // the stream's NAL length size is not 4
}

// codecs returns the RFC 6381 codecs parameter for MediaSource.isTypeSupported.
func (m *muxer) codecs() string {
	var list []string
	if m.hasVideo {
		sps := m.avc.SPS[0]
		if len(sps) >= 4 {
			list = append(list, fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3]))
		} else {
			list = append(list, "avc1.42e01e")
		}
	}
	if m.hasAudio {
		list = append(list, fmt.Sprintf("mp4a.40.%d", m.asc.Type))
	}
	return joinComma(list)
}

func joinComma(l []string) string {
	var b bytes.Buffer
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

// init returns the initialization segment (ftyp+moov).
func (m *muxer) init() ([]byte, error) {
	var in fmp4.Init
	if m.hasVideo {
		in.Tracks = append(in.Tracks, &fmp4.InitTrack{ID: videoTrackID, TimeScale: videoScale,
			Codec: &mp4.CodecH264{SPS: m.avc.SPS[0], PPS: m.avc.PPS[0]}})
	}
	if m.hasAudio {
		in.Tracks = append(in.Tracks, &fmp4.InitTrack{ID: audioTrackID, TimeScale: uint32(m.asc.SampleRate),
			Codec: &mp4.CodecMPEG4Audio{Config: m.asc}})
	}
	m.buf.Reset()
	if err := in.Marshal(&m.buf); err != nil {
		return nil, fmt.Errorf("fmp4 init: %w", err)
	}
	return m.buf.Bytes(), nil
}

// frame takes one frame. It reports ready when the codecs became known with this
// frame (the caller then writes init()).
func (m *muxer) frame(f relay.Frame) (ready bool, err error) {
	p := f.Packet
	switch p.Kind {
	case relay.KindStreamEnd:
		return false, ErrStreamEnded
	case relay.KindVideo:
		v, err := flv.ParseVideo(p.Payload)
		if err != nil {
			return false, nil
		}
		if err := flv.CheckVideo(v); err != nil {
			return false, err
		}
		if p.SeqHeader {
			if m.started {
				if bytes.Equal(v.Data, m.videoCfg) {
					return false, nil
				}
				return false, fmt.Errorf("%w: new H.264 configuration", ErrStreamEnded)
			}
			c, err := flv.ParseAVCConfig(v.Data)
			if err != nil {
				return false, err
			}
			m.avc, m.videoCfg, m.hasVideo = c, bytes.Clone(v.Data), true
			m.convertLengths = c.LengthSize != 4
			return false, nil
		}
		if v.PacketType != flv.AVCNALU || !m.hasVideo {
			return false, nil
		}
		ready = m.start()
		payload := v.Data
		if m.convertLengths {
			m.nalus, err = flv.SplitAVCC(m.nalus[:0], v.Data, m.avc.LengthSize)
			if err != nil {
				return ready, nil
			}
			payload = flv.JoinAVCC(nil, m.nalus) // rare: only for 1- or 2-byte lengths
		}
		dts := f.Timestamp * 90
		s := &sample{dts: dts, pts: dts + int64(v.CTS)*90, key: v.Keyframe, payload: payload}
		m.pendV = m.push(m.pendV, s, &m.outV, &m.baseV)
		return ready, nil
	case relay.KindAudio:
		a, err := flv.ParseAudio(p.Payload)
		if err != nil {
			return false, nil
		}
		if err := flv.CheckAudio(a); err != nil {
			return false, err
		}
		if p.SeqHeader {
			if m.started {
				if bytes.Equal(a.Data, m.audioCfg) {
					return false, nil
				}
				return false, fmt.Errorf("%w: new AAC configuration", ErrStreamEnded)
			}
			if err := m.asc.Unmarshal(a.Data); err != nil {
				return false, fmt.Errorf("AAC config: %w", err)
			}
			m.audioCfg, m.hasAudio = bytes.Clone(a.Data), true
			return false, nil
		}
		if !m.hasAudio || len(a.Data) == 0 {
			return false, nil
		}
		ready = m.start()
		ts := f.Timestamp * int64(m.asc.SampleRate) / 1000
		m.pendA = m.push(m.pendA, &sample{dts: ts, pts: ts, key: true, payload: a.Data}, &m.outA, &m.baseA)
		return ready, nil
	}
	return false, nil
}

// start marks the codecs as known at the first media frame; true the first time.
func (m *muxer) start() bool {
	if m.started {
		return false
	}
	m.started = true
	return true
}

// push queues the pending sample with its duration, now known, and returns s as the
// new pending one.
func (m *muxer) push(pend, s *sample, out *[]*fmp4.Sample, base *uint64) *sample {
	if pend != nil {
		if len(*out) == 0 {
			*base = uint64(pend.dts)
		}
		*out = append(*out, &fmp4.Sample{
			Duration:        uint32(max(s.dts-pend.dts, 0)),
			PTSOffset:       int32(pend.pts - pend.dts),
			IsNonSyncSample: !pend.key,
			Payload:         pend.payload,
		})
	}
	return s
}

// fragment returns a moof+mdat with the samples completed since the last call, or nil.
// The returned bytes are valid until the next call.
func (m *muxer) fragment() ([]byte, error) {
	if len(m.outV) == 0 && len(m.outA) == 0 {
		return nil, nil
	}
	m.seq++
	part := fmp4.Part{SequenceNumber: m.seq}
	if len(m.outV) > 0 {
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: videoTrackID, BaseTime: m.baseV, Samples: m.outV})
	}
	if len(m.outA) > 0 {
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: audioTrackID, BaseTime: m.baseA, Samples: m.outA})
	}
	m.buf.Reset()
	err := part.Marshal(&m.buf)
	clear(m.outV)
	clear(m.outA)
	m.outV, m.outA = m.outV[:0], m.outA[:0]
	if err != nil {
		return nil, fmt.Errorf("fmp4 fragment: %w", err)
	}
	return m.buf.Bytes(), nil
}
