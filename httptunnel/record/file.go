package record

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// timeLayout is the UTC start time in a recording's file name:
// app/stream-YYYYMMDD-HHMMSS.flv.
const timeLayout = "20060102-150405"

// maxMetaRead bounds how much of a file's first script tag is read to find its
// metadata (List, append).
const maxMetaRead = 1 << 20

// fileName returns the name of a recording of stream started at t: a second
// recording started in the same second gets "-1", then "-2", ...
func fileName(stream string, t time.Time, n int) string {
	s := stream + "-" + t.UTC().Format(timeLayout)
	if n > 0 {
		s += "-" + strconv.Itoa(n)
	}
	return s + ".flv"
}

// parseFileName splits a recording's file name into its stream and start time; the
// -N suffix of a same-second name is returned as n. ok is false for other names.
func parseFileName(name string) (stream string, start time.Time, n int, ok bool) {
	base, found := strings.CutSuffix(name, ".flv")
	if !found {
		return "", time.Time{}, 0, false
	}
	// stream-YYYYMMDD-HHMMSS[-N]; the stream itself may contain '-'.
	if i := strings.LastIndexByte(base, '-'); i > 0 && len(base)-i-1 < 6 {
		v, err := strconv.Atoi(base[i+1:])
		if err != nil || v <= 0 || strconv.Itoa(v) != base[i+1:] {
			return "", time.Time{}, 0, false
		}
		n, base = v, base[:i]
	}
	if len(base) < len(timeLayout)+2 || base[len(base)-len(timeLayout)-1] != '-' {
		return "", time.Time{}, 0, false
	}
	t, err := time.Parse(timeLayout, base[len(base)-len(timeLayout):])
	if err != nil {
		return "", time.Time{}, 0, false
	}
	return base[:len(base)-len(timeLayout)-1], t, n, true
}

// kindTrack follows one media kind's timestamps to estimate how long its last frame
// lasts (the gap between its last two frames).
type kindTrack struct {
	seen  bool
	ts    int64 // DTS of the last frame
	delta int64 // last positive gap between frames
}

// mediaEnd estimates where the media of a file ends, in ms: the largest
// presentation time of a frame plus the duration of its kind's frames. For the
// fixture (25 fps video with B-frames, AAC) it is what ffmpeg's own FLV muxer
// writes as duration.
type mediaEnd struct {
	audio, video kindTrack
	end          int64 // ms
	last         int64 // largest tag timestamp (DTS) seen
}

// add accounts for one tag. payload is the tag body (at least its first 5 bytes
// for AVC video, to read the composition time).
func (m *mediaEnd) add(typ flv.TagType, ts int64, payload []byte) {
	m.last = max(m.last, ts)
	var k *kindTrack
	pts := ts
	switch typ {
	case flv.TagAudio:
		if len(payload) >= 2 && payload[0]>>4 == flv.SoundAAC && payload[1] == flv.AACSeqHeader {
			return
		}
		k = &m.audio
	case flv.TagVideo:
		if len(payload) >= 1 && payload[0]&0x80 == 0 && payload[0]&0x0F == flv.CodecAVC {
			if len(payload) < 5 || payload[1] != flv.AVCNALU {
				return // sequence header, end of sequence
			}
			cts := int32(uint32(payload[2])<<16|uint32(payload[3])<<8|uint32(payload[4])) << 8 >> 8
			pts += int64(cts)
		}
		k = &m.video
	default:
		return
	}
	if k.seen && ts > k.ts {
		k.delta = ts - k.ts
	}
	k.seen, k.ts = true, ts
	m.end = max(m.end, pts+k.delta)
}

// file is one recording's FLV file. Owned by the recording's writer goroutine.
type file struct {
	f    *os.File // open for writing; its offset is at size
	path string   // on disk
	rel  string   // relative to the record dir, slash-separated: "live/x-20261130-120000.flv"

	size     int64  // bytes written to the file
	buf      []byte // whole tags not yet written
	durOff   int64  // file offset of the duration number's 8 bytes; 0 if the file has none
	sizeOff  int64  // file offset of the filesize number's 8 bytes; 0 if none
	tsOffset int64  // added to every frame's time: the end of what an appended file held

	written mediaEnd // tags in the file
	pending mediaEnd // tags in the file and in buf
}

// headerMetadata builds the file's first tag, onMetaData, from the publisher's
// metadata (nil if it sent none): duration and filesize first, as fixed-size
// numbers patched in place, then every other property of the publisher's as it
// was. It also says which of audio and video the FLV header should announce.
func headerMetadata(pub *relay.Packet) (body []byte, durOff, sizeOff int, audio, video bool) {
	fields := []metaField{{Name: "duration", Raw: numberValue(0)}, {Name: "filesize", Raw: numberValue(0)}}
	audio, video = true, true
	if pub != nil {
		if _, pf, err := parseMetadata(pub.Payload); err == nil {
			var hasA, hasV bool
			for _, f := range pf {
				switch f.Name {
				case "duration", "filesize":
					continue
				case "audiocodecid":
					hasA = true
				case "videocodecid":
					hasV = true
				}
				fields = append(fields, f)
			}
			if hasA || hasV {
				audio, video = hasA, hasV
			}
		}
	}
	body, offs := appendMetadata(nil, "onMetaData", fields)
	return body, offs[0] + 1, offs[1] + 1, audio, video
}

// createFile creates a new recording of app/stream started at start under dir and
// writes its FLV header and onMetaData (from the publisher's metadata packet, nil
// if none yet) to disk at once, so the file is valid FLV from the start.
func createFile(dir, app, stream string, start time.Time, meta *relay.Packet) (*file, error) {
	appDir := filepath.Join(dir, app)
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", appDir, err)
	}
	var f *os.File
	var name string
	for n := 0; ; n++ {
		name = fileName(stream, start, n)
		var err error
		f, err = os.OpenFile(filepath.Join(appDir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || n >= 99 {
			return nil, fmt.Errorf("create recording: %w", err)
		}
	}
	fl := &file{f: f, path: filepath.Join(appDir, name), rel: path.Join(app, name)}
	body, durOff, sizeOff, audio, video := headerMetadata(meta)
	fl.buf = append(fl.buf, flv.Header(audio, video)...)
	fl.durOff = int64(len(fl.buf)+flv.TagHeaderSize) + int64(durOff)
	fl.sizeOff = int64(len(fl.buf)+flv.TagHeaderSize) + int64(sizeOff)
	fl.appendTag(flv.TagScript, 0, body)
	if err := fl.flush(); err != nil {
		f.Close()
		os.Remove(fl.path)
		return nil, err
	}
	return fl, nil
}

// newestFile returns the name of the newest recording of stream in appDir (by the
// start time in its name), or fs.ErrNotExist.
func newestFile(appDir, stream string) (string, error) {
	entries, err := os.ReadDir(appDir)
	if err != nil {
		return "", err
	}
	type cand struct {
		name  string
		start time.Time
		n     int
	}
	var best *cand
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		s, start, n, ok := parseFileName(e.Name())
		if !ok || s != stream {
			continue
		}
		if best == nil || start.After(best.start) || start.Equal(best.start) && n > best.n {
			best = &cand{e.Name(), start, n}
		}
	}
	if best == nil {
		return "", fmt.Errorf("no recording of %s in %s: %w", stream, appDir, fs.ErrNotExist)
	}
	return best.name, nil
}

// openAppend reopens the newest recording of app/stream for a publish of type
// append: it checks the file tag by tag, cuts a torn last tag (a crash), and
// continues after the end of its media. Any error means the caller starts a new
// file instead.
func openAppend(dir, app, stream string) (*file, error) {
	appDir := filepath.Join(dir, app)
	name, err := newestFile(appDir, stream)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(appDir, name)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fl := &file{f: f, path: p, rel: path.Join(app, name)}
	sc, err := scanFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", fl.rel, err)
	}
	if err := f.Truncate(sc.good); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: cut torn tail: %w", fl.rel, err)
	}
	if _, err := f.Seek(sc.good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	fl.size = sc.good
	fl.durOff, fl.sizeOff = sc.durOff, sc.sizeOff
	fl.written = sc.media
	// The new session starts where the old media ended; per-kind frame tracking
	// starts afresh, so the gap is not taken for a frame duration.
	fl.tsOffset = max(sc.media.end, sc.media.last+1)
	fl.written.audio, fl.written.video = kindTrack{}, kindTrack{}
	fl.pending = fl.written
	return fl, nil
}

// scan is what scanFile learned about an FLV file.
type scan struct {
	good            int64    // offset after the last complete tag
	tags            int      // complete tags
	durOff, sizeOff int64    // offsets of the metadata numbers' 8 bytes, 0 if absent
	duration        float64  // the metadata's duration (s), 0 if absent
	media           mediaEnd // the tags' media span
}

// scanFile checks an FLV file tag by tag (headers and PreviousTagSize; bodies are
// skipped but for the first bytes of video tags) and reads its metadata. It stops at
// the first torn or inconsistent tag: a file cut by a crash. Only a file that is not
// FLV at all is an error.
func scanFile(f io.ReadSeeker) (scan, error) {
	var sc scan
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return sc, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var h [flv.HeaderSize + flv.TrailerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return sc, fmt.Errorf("%w: no FLV header: %w", flv.ErrInvalid, err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' || binary.BigEndian.Uint32(h[5:9]) != flv.HeaderSize {
		return sc, fmt.Errorf("%w: not an FLV file this recorder can continue", flv.ErrInvalid)
	}
	off := int64(len(h))
	sc.good = off
	var th [flv.TagHeaderSize]byte
	for {
		if _, err := io.ReadFull(r, th[:]); err != nil {
			return sc, nil
		}
		typ := flv.TagType(th[0] & 0x1F)
		size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
		ts := int64(uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6]) | uint32(th[7])<<24)
		var body []byte
		switch {
		case sc.tags == 0 && typ == flv.TagScript && size <= maxMetaRead:
			body = make([]byte, size)
		case typ == flv.TagVideo || typ == flv.TagAudio:
			body = make([]byte, min(size, 5))
		}
		if _, err := io.ReadFull(r, body); err != nil {
			return sc, nil
		}
		if _, err := r.Discard(size - len(body)); err != nil {
			return sc, nil
		}
		var tr [flv.TrailerSize]byte
		if _, err := io.ReadFull(r, tr[:]); err != nil || binary.BigEndian.Uint32(tr[:]) != uint32(flv.TagHeaderSize+size) {
			return sc, nil
		}
		if sc.tags == 0 && typ == flv.TagScript && body != nil {
			if _, fields, err := parseMetadata(body); err == nil {
				base := off + flv.TagHeaderSize
				for _, fd := range fields {
					v, ok := fd.number()
					switch {
					case !ok:
					case fd.Name == "duration":
						sc.durOff, sc.duration = base+int64(fd.Off)+1, v
					case fd.Name == "filesize":
						sc.sizeOff = base + int64(fd.Off) + 1
					}
				}
			}
		}
		sc.media.add(typ, ts, body)
		off += flv.TagHeaderSize + int64(size) + flv.TrailerSize
		sc.good = off
		sc.tags++
	}
}

// readDuration returns the duration in a recording's onMetaData (the first tag), or
// 0 if it has none.
func readDuration(p string) time.Duration {
	f, err := os.Open(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	var h [flv.HeaderSize + flv.TrailerSize + flv.TagHeaderSize]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:3]) != "FLV" {
		return 0
	}
	th := h[flv.HeaderSize+flv.TrailerSize:]
	size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
	if flv.TagType(th[0]&0x1F) != flv.TagScript || size > maxMetaRead {
		return 0
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(f, body); err != nil {
		return 0
	}
	_, fields, err := parseMetadata(body)
	if err != nil {
		return 0
	}
	for _, fd := range fields {
		if v, ok := fd.number(); ok && fd.Name == "duration" && v > 0 && v < math.MaxInt64/float64(time.Second) {
			return time.Duration(v * float64(time.Second)).Round(time.Millisecond)
		}
	}
	return 0
}

// appendTag adds one tag to the write buffer.
func (fl *file) appendTag(typ flv.TagType, ts int64, body []byte) {
	n := len(fl.buf)
	fl.buf = slices.Grow(fl.buf, flv.TagHeaderSize+len(body)+flv.TrailerSize)[:n+flv.TagHeaderSize]
	flv.PutTagHeader(fl.buf[n:], typ, len(body), ts)
	fl.buf = append(fl.buf, body...)
	fl.buf = binary.BigEndian.AppendUint32(fl.buf, uint32(flv.TagHeaderSize+len(body)))
	fl.pending.add(typ, ts, body)
}

// writeFrame adds a hub frame as a tag. Metadata updates keep everything but
// duration and filesize, which only the file's first tag carries.
func (fl *file) writeFrame(f relay.Frame) {
	p := f.Packet
	if len(p.Payload) > flv.MaxDataSize {
		return // cannot come from RTMP (24-bit lengths)
	}
	ts := f.Timestamp + fl.tsOffset
	switch p.Kind {
	case relay.KindAudio:
		fl.appendTag(flv.TagAudio, ts, p.Payload)
	case relay.KindVideo:
		fl.appendTag(flv.TagVideo, ts, p.Payload)
	case relay.KindMetadata:
		body := p.Payload
		if name, fields, err := parseMetadata(body); err == nil {
			fields = slices.DeleteFunc(fields, func(f metaField) bool { return f.Name == "duration" || f.Name == "filesize" })
			body, _ = appendMetadata(nil, name, fields)
		}
		fl.appendTag(flv.TagScript, ts, body)
	}
}

// duration returns the media duration of what is in the file.
func (fl *file) duration() time.Duration {
	return time.Duration(fl.written.end) * time.Millisecond
}

// flush writes the buffered tags and then updates duration and filesize in place,
// so that a file cut by a crash still has metadata that is at most one flush old.
// A failed write is cut back to the last whole tag (best effort), so the file stays
// valid FLV; the error is returned.
func (fl *file) flush() error {
	if len(fl.buf) > 0 {
		n, err := fl.f.Write(fl.buf)
		if err != nil {
			if n > 0 {
				// Keep the whole tags that made it (a disk that just filled up) and
				// cut the torn one.
				keep := fl.keepWhole(n)
				_ = fl.f.Truncate(fl.size + int64(keep))
				_, _ = fl.f.Seek(fl.size+int64(keep), io.SeekStart)
				fl.size += int64(keep)
			}
			fl.buf = fl.buf[:0]
			fl.pending = fl.written
			if perr := fl.patch(); perr != nil {
				err = errors.Join(err, perr)
			}
			return fmt.Errorf("flush: %w", err) // err names the file
		}
		fl.size += int64(n)
		fl.buf = fl.buf[:0]
		fl.written = fl.pending
	}
	return fl.patch()
}

// keepWhole returns how many bytes of the first n of buf are whole tags, and
// accounts for their media in written.
func (fl *file) keepWhole(n int) int {
	off := 0
	for {
		b := fl.buf[off:]
		if len(b) < flv.TagHeaderSize {
			return off
		}
		size := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		end := off + flv.TagHeaderSize + size + flv.TrailerSize
		if end > n {
			return off
		}
		ts := int64(uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24)
		fl.written.add(flv.TagType(b[0]&0x1F), ts, b[flv.TagHeaderSize:flv.TagHeaderSize+size])
		off = end
	}
}

// patch writes the current duration (s) and file size (bytes) into the onMetaData
// numbers, without moving the write offset.
func (fl *file) patch() error {
	var b [8]byte
	if fl.durOff > 0 {
		binary.BigEndian.PutUint64(b[:], math.Float64bits(float64(fl.written.end)/1000))
		if _, err := fl.f.WriteAt(b[:], fl.durOff); err != nil {
			return fmt.Errorf("update duration of %s: %w", fl.rel, err)
		}
	}
	if fl.sizeOff > 0 {
		binary.BigEndian.PutUint64(b[:], math.Float64bits(float64(fl.size)))
		if _, err := fl.f.WriteAt(b[:], fl.sizeOff); err != nil {
			return fmt.Errorf("update filesize of %s: %w", fl.rel, err)
		}
	}
	return nil
}

// close flushes (unless a write already failed), updates the metadata, syncs and
// closes the file. It returns the first error.
func (fl *file) close(failed bool) error {
	var errs []error
	if !failed {
		errs = append(errs, fl.flush())
	} else {
		errs = append(errs, fl.patch())
	}
	if err := fl.f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("sync %s: %w", fl.rel, err))
	}
	if err := fl.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", fl.rel, err))
	}
	return errors.Join(errs...)
}
