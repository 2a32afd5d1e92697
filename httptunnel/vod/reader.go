package vod

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// Keyframe is one entry of a Reader's seek index.
type Keyframe struct {
	Time   int64 // ms from the start of the file (see Reader)
	Offset int64 // of the tag header in the file
}

// audioIndexMS is the spacing of the seek index of files without video: every audio
// frame is a random access point, so one entry a second is plenty.
const audioIndexMS = 1000

// maxScriptPeek is how much of a script tag the index scan reads to find onMetaData.
const maxScriptPeek = 32

// Reader reads an FLV file (FLV 10.1 E.2-E.4) as relay packets. NewReader scans the
// tag headers once (no bodies) and indexes the keyframes, the onMetaData tag and
// the sequence headers; ReadPacket then returns onMetaData and the sequence headers
// first, then the file's tags in order from the current position. Times are shifted
// so that the file's first audio or video frame is at 0 (a file starting at 0 is
// unchanged), and never negative.
//
// Tags that are neither audio, video nor onMetaData (other script data, unknown
// types) and empty tags are skipped. A truncated last tag (a recording that is still
// being written, or a crash) ends the file as io.EOF; tags appended after the scan
// are read too. A Reader is used by one goroutine at a time.
type Reader struct {
	r     io.ReaderAt
	first int64 // offset of the first tag

	// The index, built by NewReader; immutable afterwards.
	base      int64      // raw time of the first audio or video frame
	duration  int64      // ms, time of the last frame
	keyframes []Keyframe // sorted by offset and time
	meta      int64      // offset of the onMetaData tag, -1 if none
	videoSeq  []int64    // offsets of video sequence headers
	audioSeq  []int64    // offsets of audio sequence headers
	hasAudio  bool
	hasVideo  bool
	frames    [2]int // audio, video frames (not sequence headers) seen by the scan

	// Read state.
	off   int64               // next tag to read
	pre   []*relay.Packet     // preamble still to return
	skip  [3]int64            // offsets sent in the preamble, skipped when reached
	cache map[int64]cachedTag // the preamble tags, by offset
}

// NewReader checks the FLV header of the size bytes of r and indexes the tags. It
// fails (wrapping flv.ErrInvalid) without the FLV signature or with a bad data
// offset; a file whose tags are damaged part-way is indexed up to the damage.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	var h [flv.HeaderSize]byte
	if n, _ := r.ReadAt(h[:], 0); n < len(h) {
		return nil, fmt.Errorf("%w: %d bytes, shorter than an FLV header", flv.ErrInvalid, n)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return nil, fmt.Errorf("%w: no FLV signature", flv.ErrInvalid)
	}
	off := binary.BigEndian.Uint32(h[5:9])
	if off < flv.HeaderSize || off > 1<<16 {
		return nil, fmt.Errorf("%w: data offset %d", flv.ErrInvalid, off)
	}
	rd := &Reader{r: r, first: int64(off) + flv.TrailerSize, meta: -1, skip: [3]int64{-1, -1, -1},
		cache: map[int64]cachedTag{}}
	rd.scan(size)
	rd.SeekTo(0)
	return rd, nil
}

// tagHeader is a parsed 11-byte tag header (E.4.1).
type tagHeader struct {
	typ  flv.TagType
	size int64
	ts   int64 // raw, with TimestampExtended
}

func parseTagHeader(h []byte) tagHeader {
	return tagHeader{
		typ:  flv.TagType(h[0] & 0x1F), // the top bits are reserved / the filter flag
		size: int64(h[1])<<16 | int64(h[2])<<8 | int64(h[3]),
		ts:   int64(uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6]) | uint32(h[7])<<24),
	}
}

// scan reads every tag header (and the first bytes of each body) up to size.
func (rd *Reader) scan(size int64) {
	var (
		baseSet   bool
		rawKeys   []Keyframe // raw times until base is known
		audioKeys []Keyframe
		lastAudio = int64(-1 << 62)
		last      int64
	)
	win := window{r: rd.r, buf: make([]byte, scanWindow)}
	for off := rd.first; off+flv.TagHeaderSize <= size; {
		peek := win.peek(off, flv.TagHeaderSize+5)
		n := len(peek)
		if n < flv.TagHeaderSize {
			break
		}
		th := parseTagHeader(peek)
		if off+flv.TagHeaderSize+th.size > size {
			break // truncated: the file ends here for now
		}
		body := peek[flv.TagHeaderSize:min(n, flv.TagHeaderSize+int(th.size))]
		here := off
		off += flv.TagHeaderSize + th.size + flv.TrailerSize
		if th.size == 0 {
			continue
		}
		switch th.typ {
		case flv.TagVideo:
			key, seq := videoFlags(body)
			if seq {
				rd.videoSeq = append(rd.videoSeq, here)
				continue
			}
			rd.hasVideo = true
			rd.frames[1]++
			if key && !endOfSequence(body) {
				rawKeys = append(rawKeys, Keyframe{Time: th.ts, Offset: here})
			}
		case flv.TagAudio:
			if audioSeqHeader(body) {
				rd.audioSeq = append(rd.audioSeq, here)
				continue
			}
			rd.hasAudio = true
			rd.frames[0]++
			if th.ts-lastAudio >= audioIndexMS {
				lastAudio = th.ts
				audioKeys = append(audioKeys, Keyframe{Time: th.ts, Offset: here})
			}
		case flv.TagScript:
			if rd.meta < 0 {
				want := flv.TagHeaderSize + min(maxScriptPeek, int(th.size))
				if p := win.peek(here, want); len(p) == want && isOnMetaData(p[flv.TagHeaderSize:]) {
					rd.meta = here
				}
			}
			continue
		default:
			continue
		}
		if !baseSet {
			baseSet, rd.base = true, th.ts
		}
		last = max(last, th.ts)
	}
	if !rd.hasVideo {
		rawKeys = audioKeys
	}
	for _, k := range rawKeys {
		rd.keyframes = append(rd.keyframes, Keyframe{Time: max(k.Time-rd.base, 0), Offset: k.Offset})
	}
	rd.duration = max(last-rd.base, 0)
}

// scanWindow is how much of the file the index scan reads at once: tag headers of
// typical media tags (1-2 KB) come dozens to a read instead of one pread each.
const scanWindow = 64 << 10

// window reads a file through one buffer for the forward-moving index scan.
type window struct {
	r   io.ReaderAt
	buf []byte
	off int64 // file offset of buf[0]
	n   int   // valid bytes in buf
}

// peek returns up to n bytes at off (fewer at the end of the file). The result is
// valid until the next call.
func (w *window) peek(off int64, n int) []byte {
	if off < w.off || off+int64(n) > w.off+int64(w.n) {
		w.off = off
		w.n, _ = w.r.ReadAt(w.buf, off)
	}
	i := int(off - w.off)
	return w.buf[i:min(i+n, w.n)]
}

// AMF0 strings of the script tags the reader knows (E.4.4.1: SCRIPTDATA starts with
// the name as an AMF0 string).
var (
	amfOnMetaData    = []byte("\x02\x00\x0aonMetaData")
	amfSetDataFrame  = []byte("\x02\x00\x0d@setDataFrame")
	onMetaDataInside = append(append([]byte(nil), amfSetDataFrame...), amfOnMetaData...)
)

func isOnMetaData(p []byte) bool {
	return bytes.HasPrefix(p, amfOnMetaData) || bytes.HasPrefix(p, onMetaDataInside)
}

// videoFlags classifies a VIDEODATA body (E.4.3.1, and the enhanced RTMP
// ExVideoTagHeader) as rtmp does for published video: keyframe, sequence header.
func videoFlags(p []byte) (keyframe, seqHeader bool) {
	if len(p) == 0 {
		return false, false
	}
	b0 := p[0]
	keyframe = (b0>>4)&0x07 == 1
	if b0&0x80 != 0 { // enhanced: the low nibble is the packet type
		pt := b0 & 0x0F
		return keyframe, pt == 0 || pt == 5
	}
	if codec := b0 & 0x0F; (codec == flv.CodecAVC || codec == 12 || codec == 13) && len(p) > 1 {
		seqHeader = p[1] == flv.AVCSeqHeader
	}
	return keyframe, seqHeader
}

// endOfSequence reports an AVC end-of-sequence tag (AVCPacketType 2): flagged as a
// keyframe by muxers, but nothing to start playing at.
func endOfSequence(p []byte) bool {
	return len(p) > 1 && p[0]&0x80 == 0 && p[0]&0x0F == flv.CodecAVC && p[1] == flv.AVCEndOfSeq
}

// audioSeqHeader reports an AAC AudioSpecificConfig or an enhanced audio
// SequenceStart (E.4.2.1).
func audioSeqHeader(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch p[0] >> 4 {
	case flv.SoundAAC:
		return p[1] == flv.AACSeqHeader
	case 9: // ExHeader
		return p[0]&0x0F == 0
	}
	return false
}

// Duration returns the time of the last audio or video frame found by the scan, in ms.
func (rd *Reader) Duration() int64 { return rd.duration }

// Keyframes returns the seek index: the video keyframes, or for a file without video
// one audio frame a second. The slice must not be modified.
func (rd *Reader) Keyframes() []Keyframe { return rd.keyframes }

// HasAudio and HasVideo report whether the scan found audio or video frames.
func (rd *Reader) HasAudio() bool { return rd.hasAudio }

// HasVideo reports whether the scan found video frames.
func (rd *Reader) HasVideo() bool { return rd.hasVideo }

// Frames returns how many audio and video frames (not sequence headers) the scan found.
func (rd *Reader) Frames() (audio, video int) { return rd.frames[0], rd.frames[1] }

// SeekTo positions the reader at the keyframe at or before ms (the first tag of the
// file if there is none) and returns that keyframe's time. The next ReadPacket
// calls return onMetaData and the sequence headers in force there, all at that
// time, then the tags from the keyframe on.
func (rd *Reader) SeekTo(ms int64) int64 {
	i, found := slices.BinarySearchFunc(rd.keyframes, ms, func(k Keyframe, t int64) int {
		switch {
		case k.Time < t:
			return -1
		case k.Time > t:
			return 1
		}
		return 0
	})
	if found {
		for i+1 < len(rd.keyframes) && rd.keyframes[i+1].Time == ms {
			i++ // the last of equal times
		}
	} else {
		i--
	}
	at, t := rd.first, int64(0)
	if i >= 0 {
		at, t = rd.keyframes[i].Offset, rd.keyframes[i].Time
	}
	rd.off = at
	rd.pre = rd.pre[:0]
	rd.skip = [3]int64{-1, -1, -1}
	for j, off := range [3]int64{rd.meta, lastBefore(rd.videoSeq, at), lastBefore(rd.audioSeq, at)} {
		if off < 0 {
			continue
		}
		p, err := rd.preamble(off, t)
		if err != nil || p == nil {
			continue
		}
		rd.pre = append(rd.pre, p)
		rd.skip[j] = off
	}
	return t
}

// lastBefore returns the last offset in offs that is before at, else the first one,
// else -1: the sequence header in force at a keyframe.
func lastBefore(offs []int64, at int64) int64 {
	if len(offs) == 0 {
		return -1
	}
	i, _ := slices.BinarySearch(offs, at)
	if i == 0 {
		return offs[0]
	}
	return offs[i-1]
}

// cachedTag is a preamble tag read once.
type cachedTag struct {
	th   tagHeader
	body []byte
}

// preamble returns the packet of the tag at off, re-timed to t (nil for a tag that
// is no packet). Tags are read once and cached.
func (rd *Reader) preamble(off, t int64) (*relay.Packet, error) {
	ct, ok := rd.cache[off]
	if !ok {
		th, body, err := rd.readTag(off)
		if err != nil {
			return nil, err
		}
		ct = cachedTag{th, body}
		rd.cache[off] = ct
	}
	p := rd.packet(ct.th, ct.body)
	if p != nil {
		p.Timestamp = t
	}
	return p, nil
}

// readTag reads the tag at off. It returns io.EOF when the file has no complete tag
// there.
func (rd *Reader) readTag(off int64) (tagHeader, []byte, error) {
	var h [flv.TagHeaderSize]byte
	if n, _ := rd.r.ReadAt(h[:], off); n < len(h) {
		return tagHeader{}, nil, io.EOF
	}
	th := parseTagHeader(h[:])
	body := make([]byte, th.size)
	if n, _ := rd.r.ReadAt(body, off+flv.TagHeaderSize); int64(n) < th.size {
		return tagHeader{}, nil, io.EOF
	}
	return th, body, nil
}

// packet turns a tag into a relay packet; nil for tags the reader skips.
func (rd *Reader) packet(th tagHeader, body []byte) *relay.Packet {
	if len(body) == 0 {
		return nil
	}
	p := &relay.Packet{Timestamp: max(th.ts-rd.base, 0), Payload: body}
	switch th.typ {
	case flv.TagVideo:
		p.Kind = relay.KindVideo
		p.Keyframe, p.SeqHeader = videoFlags(body)
	case flv.TagAudio:
		p.Kind = relay.KindAudio
		p.SeqHeader = audioSeqHeader(body)
	case flv.TagScript:
		if !isOnMetaData(body) {
			return nil
		}
		// Players get "onMetaData", {...} as a publisher's metadata reaches them: a
		// recorder's "@setDataFrame" name is dropped.
		p.Kind, p.Payload = relay.KindMetadata, bytes.TrimPrefix(body, amfSetDataFrame)
	default:
		return nil
	}
	return p
}

// ReadPacket returns the next packet: first the preamble (onMetaData and sequence
// headers, see SeekTo), then the file's tags. It returns io.EOF at the end of the
// file. Payloads are new slices that the caller may keep.
func (rd *Reader) ReadPacket() (*relay.Packet, error) {
	if len(rd.pre) > 0 {
		p := rd.pre[0]
		rd.pre = rd.pre[1:]
		return p, nil
	}
	for {
		off := rd.off
		th, body, err := rd.readTag(off)
		if err != nil {
			return nil, err
		}
		rd.off = off + flv.TagHeaderSize + th.size + flv.TrailerSize
		if off == rd.skip[0] || off == rd.skip[1] || off == rd.skip[2] {
			continue // already sent in the preamble
		}
		if p := rd.packet(th, body); p != nil {
			return p, nil
		}
	}
}
