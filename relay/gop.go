package relay

// gop is the cache of the current group of pictures: the audio and video frames
// from the latest video keyframe on, so that a new subscriber starts with a picture
// instead of waiting for the next keyframe. Owned by the stream (see stream.gop).
type gop struct {
	pkts  []*Packet // starts with a keyframe when valid; the backing array is reused
	bytes int       // payload bytes in pkts
	valid bool      // pkts is complete from a keyframe and within the caps
}

// add records a media frame (not a sequence header). A keyframe starts a new GOP;
// a frame that would exceed maxFrames or maxBytes empties the cache until the next
// keyframe, since a GOP with a hole cannot be decoded.
func (g *gop) add(p *Packet, maxFrames, maxBytes int) {
	if !p.isMedia() {
		return
	}
	if p.isVideoFrame() && p.Keyframe {
		g.reset()
		g.valid = true
	} else if !g.valid {
		return
	}
	if len(g.pkts)+1 > maxFrames || g.bytes+len(p.Payload) > maxBytes {
		g.reset()
		return
	}
	g.pkts = append(g.pkts, p)
	g.bytes += len(p.Payload)
}

// reset empties the cache and drops its packet references.
func (g *gop) reset() {
	clear(g.pkts)
	g.pkts = g.pkts[:0]
	g.bytes = 0
	g.valid = false
}

// span is the publisher-time distance from the first to the last cached frame, in ms.
func (g *gop) span() int64 {
	if len(g.pkts) < 2 {
		return 0
	}
	return g.pkts[len(g.pkts)-1].Timestamp - g.pkts[0].Timestamp
}
