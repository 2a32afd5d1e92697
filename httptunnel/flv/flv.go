package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// TagType is the type of an FLV tag (FLV 10.1 E.4.1).
type TagType uint8

// Tag types.
const (
	TagAudio  TagType = 8
	TagVideo  TagType = 9
	TagScript TagType = 18
)

// Sizes of the fixed parts of an FLV stream.
const (
	HeaderSize    = 9  // FLV file header (E.2)
	TagHeaderSize = 11 // tag header: type, data size, timestamp, stream id (E.4.1)
	TrailerSize   = 4  // PreviousTagSize after every tag (E.3)
	// MaxDataSize is the largest tag body FLV can carry (24-bit DataSize).
	MaxDataSize = 1<<24 - 1
)

// Errors returned by the parsers; all of them wrap ErrInvalid.
var (
	// ErrInvalid is wrapped by every parse error of this package.
	ErrInvalid = errors.New("flv: invalid data")
	// ErrTooLarge is returned for a tag body larger than MaxDataSize.
	ErrTooLarge = fmt.Errorf("%w: tag body larger than 16 MiB", ErrInvalid)
)

// Header returns the 9-byte FLV file header followed by PreviousTagSize0 (E.2, E.3):
// the 13 bytes an FLV stream starts with.
func Header(audio, video bool) []byte {
	var flags byte
	if audio {
		flags |= 0x04
	}
	if video {
		flags |= 0x01
	}
	return []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, HeaderSize, 0, 0, 0, 0}
}

// PutTagHeader writes the 11-byte tag header of a tag of type typ with a body of size
// bytes at timestamp ts (ms) into dst[:11]. Timestamps wrap at 2^32 ms as FLV's
// extended timestamp does; negative ones are written as 0.
func PutTagHeader(dst []byte, typ TagType, size int, ts int64) {
	_ = dst[10]
	if ts < 0 {
		ts = 0
	}
	t := uint32(ts)
	dst[0] = byte(typ)
	dst[1], dst[2], dst[3] = byte(size>>16), byte(size>>8), byte(size)
	dst[4], dst[5], dst[6] = byte(t>>16), byte(t>>8), byte(t)
	dst[7] = byte(t >> 24) // TimestampExtended
	dst[8], dst[9], dst[10] = 0, 0, 0
}

// Batch gathers tags to be written with one writev. The header and trailer bytes are
// kept in the Batch's own scratch space and the payloads are referenced, not copied, so
// a reused Batch allocates nothing once it has grown to its working size. A Batch is
// owned by one goroutine.
type Batch struct {
	bufs    net.Buffers // header, payload, trailer per tag
	scratch []byte      // 15 bytes per tag: header + trailer
	size    int         // total bytes
	out     net.Buffers // WriteTo's view of bufs: writev consumes it, bufs keeps the array
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	clear(b.bufs) // drop references to payloads
	b.bufs = b.bufs[:0]
	b.scratch = b.scratch[:0]
	b.size = 0
}

// Add appends a tag. It returns ErrTooLarge if payload does not fit in an FLV tag.
// payload must not be modified until the batch has been written.
func (b *Batch) Add(typ TagType, ts int64, payload []byte) error {
	if len(payload) > MaxDataSize {
		return ErrTooLarge
	}
	if cap(b.scratch)-len(b.scratch) < TagHeaderSize+TrailerSize {
		// Grow by doubling; slices already handed to bufs keep the old array alive.
		ns := make([]byte, len(b.scratch), max(2*cap(b.scratch), 64*(TagHeaderSize+TrailerSize)))
		copy(ns, b.scratch)
		b.scratch = ns
	}
	n := len(b.scratch)
	b.scratch = b.scratch[:n+TagHeaderSize+TrailerSize]
	hdr := b.scratch[n : n+TagHeaderSize : n+TagHeaderSize]
	tr := b.scratch[n+TagHeaderSize : n+TagHeaderSize+TrailerSize : n+TagHeaderSize+TrailerSize]
	PutTagHeader(hdr, typ, len(payload), ts)
	binary.BigEndian.PutUint32(tr, uint32(TagHeaderSize+len(payload)))
	if len(payload) > 0 {
		b.bufs = append(b.bufs, hdr, payload, tr)
	} else {
		b.bufs = append(b.bufs, hdr, tr)
	}
	b.size += TagHeaderSize + len(payload) + TrailerSize
	return nil
}

// Len returns the number of bytes in b.
func (b *Batch) Len() int { return b.size }

// AppendBuffers appends b's buffers to dst and returns it; the caller may add framing
// (an HTTP chunk header) around them and write everything with one
// net.Buffers.WriteTo.
func (b *Batch) AppendBuffers(dst net.Buffers) net.Buffers { return append(dst, b.bufs...) }

// WriteTo writes the batch to w (one writev when w is a *net.TCPConn) and resets it.
func (b *Batch) WriteTo(w io.Writer) (int64, error) {
	b.out = b.bufs
	n, err := b.out.WriteTo(w)
	b.out = nil
	b.Reset()
	return n, err
}

// Tag is one tag read by a Reader.
type Tag struct {
	Type      TagType
	Timestamp uint32 // ms, with the extended byte
	Data      []byte
}

// Reader reads an FLV stream: the file header, then tags.
type Reader struct {
	r          io.Reader
	headerDone bool
	hdr        [TagHeaderSize + TrailerSize]byte
	// Audio and Video are the header's TypeFlags, valid after the first ReadTag.
	Audio, Video bool
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// ReadTag returns the next tag; Data is newly allocated. It returns io.EOF at a clean
// end and io.ErrUnexpectedEOF for a truncated tag.
func (r *Reader) ReadTag() (Tag, error) {
	if !r.headerDone {
		var h [HeaderSize + TrailerSize]byte
		if _, err := io.ReadFull(r.r, h[:]); err != nil {
			return Tag{}, err
		}
		if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
			return Tag{}, fmt.Errorf("%w: no FLV signature", ErrInvalid)
		}
		off := binary.BigEndian.Uint32(h[5:9])
		if off < HeaderSize || off > 1<<16 {
			return Tag{}, fmt.Errorf("%w: data offset %d", ErrInvalid, off)
		}
		if _, err := io.CopyN(io.Discard, r.r, int64(off-HeaderSize)); err != nil {
			return Tag{}, noEOF(err)
		}
		r.Audio, r.Video = h[4]&0x04 != 0, h[4]&0x01 != 0
		r.headerDone = true
	}
	h := r.hdr[:TagHeaderSize]
	if _, err := io.ReadFull(r.r, h); err != nil {
		return Tag{}, err
	}
	typ := TagType(h[0] & 0x1F) // the top bits are reserved / the filter flag
	size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	ts := uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6]) | uint32(h[7])<<24
	data := make([]byte, size)
	if _, err := io.ReadFull(r.r, data); err != nil {
		return Tag{}, noEOF(err)
	}
	tr := r.hdr[TagHeaderSize:]
	if _, err := io.ReadFull(r.r, tr); err != nil {
		return Tag{}, noEOF(err)
	}
	if prev := binary.BigEndian.Uint32(tr); prev != uint32(TagHeaderSize+size) {
		return Tag{}, fmt.Errorf("%w: PreviousTagSize %d, want %d", ErrInvalid, prev, TagHeaderSize+size)
	}
	return Tag{Type: typ, Timestamp: ts, Data: data}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
