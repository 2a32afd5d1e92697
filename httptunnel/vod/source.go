package vod

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// Errors of name resolution. ErrNotFound wraps fs.ErrNotExist and ErrBadName wraps
// fs.ErrInvalid, so that callers outside this package (rtmp) can tell them apart
// with errors.Is alone.
var (
	// ErrNotFound is returned when no directory holds the requested file.
	ErrNotFound = fmt.Errorf("vod: no such file: %w", fs.ErrNotExist)
	// ErrBadName is returned for a name that may not name a file in a VOD
	// directory: "..", absolute, backslashes, NUL, empty segments, not .flv.
	ErrBadName = fmt.Errorf("vod: bad file name: %w", fs.ErrInvalid)
)

// MaxNameLen is the longest name Resolve accepts, in bytes.
const MaxNameLen = 1024

// NameError is a refused name and why. It wraps ErrBadName.
type NameError struct {
	Name   string
	Reason string
}

// Error returns the name (quoted) and the reason.
func (e *NameError) Error() string { return fmt.Sprintf("vod: bad file name %q: %s", e.Name, e.Reason) }

// Unwrap returns ErrBadName.
func (e *NameError) Unwrap() error { return ErrBadName }

// Config lists the directories a Source serves.
type Config struct {
	// Dirs are searched in order; the first that holds the name wins. Empty
	// strings are skipped. A directory that does not exist (yet: the record
	// directory is made by the first recording) holds nothing.
	Dirs []string
	// Access, when set, decides on every HTTP request of ServeHTTP (relay.ActionPlay,
	// Protocol "vod", the key of the file as FileKey gives it, the request's query);
	// a refusal is answered 403. Nil allows everyone.
	Access relay.AccessController
	// AccessTimeout bounds one Access decision; default 5s.
	AccessTimeout time.Duration
}

// Source resolves names inside its directories and opens FLV files there. Safe for
// concurrent use; it keeps no file open between calls.
type Source struct {
	dirs []string // immutable
	cfg  Config   // immutable
	log  zerolog.Logger
}

// New returns a Source over cfg.Dirs. With no directory every name is ErrNotFound.
func New(cfg Config, log zerolog.Logger) (*Source, error) {
	if cfg.AccessTimeout <= 0 {
		cfg.AccessTimeout = 5 * time.Second
	}
	s := &Source{cfg: cfg, log: log.With().Str("component", "vod").Logger()}
	seen := map[string]bool{}
	for _, d := range cfg.Dirs {
		if d == "" || seen[d] {
			continue
		}
		if strings.ContainsRune(d, 0) {
			return nil, fmt.Errorf("vod: directory %q contains NUL", d)
		}
		seen[d] = true
		s.dirs = append(s.dirs, d)
	}
	return s, nil
}

// Dirs returns the directories searched, in order.
func (s *Source) Dirs() []string { return append([]string(nil), s.dirs...) }

// CheckName returns nil if name is acceptable as a path relative to a VOD
// directory: slash-separated, valid UTF-8, at most MaxNameLen bytes, no empty, "."
// or ".." segment, no leading "/", no backslash, NUL or control character, ending
// in ".flv" (any case). Otherwise it returns a *NameError.
func CheckName(name string) error {
	bad := func(why string) error { return &NameError{Name: name, Reason: why} }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxNameLen:
		return bad("too long")
	case !utf8.ValidString(name):
		return bad("not UTF-8")
	case strings.HasPrefix(name, "/"):
		return bad("absolute path")
	case strings.ContainsRune(name, '\\'):
		return bad("backslash")
	case !strings.HasSuffix(strings.ToLower(name), ".flv"):
		return bad("not an .flv file")
	}
	for _, r := range name {
		if r == 0 {
			return bad("NUL")
		}
		if unicode.IsControl(r) {
			return bad("control character")
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("'" + seg + "' segment")
		}
	}
	return nil
}

// Open opens the regular file name (relative, as CheckName accepts) in the first
// directory that has it. Each directory is opened as an os.Root, so a symlink that
// points outside the directory fails like a missing file; one that stays inside is
// followed. Errors: a *NameError (ErrBadName), ErrNotFound, or an I/O error.
func (s *Source) Open(name string) (*os.File, fs.FileInfo, error) {
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	var ioErr, notFound error
	for _, dir := range s.dirs {
		f, fi, err := openIn(dir, name)
		switch {
		case err == nil:
			return f, fi, nil
		case !errors.Is(err, fs.ErrNotExist):
			ioErr = cmp.Or(ioErr, err)
		case notFound == nil || !errors.Is(notFound, ErrNotFound) && errors.Is(err, ErrNotFound):
			notFound = err // prefer a refusal with its cause (a symlink out) to a missing directory
		}
	}
	if ioErr != nil {
		return nil, nil, ioErr
	}
	if notFound != nil && errors.Is(notFound, ErrNotFound) {
		return nil, nil, notFound
	}
	return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, name)
}

// openIn opens name inside dir through an os.Root. Escapes (symlinks out of dir)
// are reported as not found; so are directories and other non-regular files.
func openIn(dir, name string) (*os.File, fs.FileInfo, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("vod: open directory %s: %w", dir, err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		// Missing, a symlink out of dir ("path escapes from parent"), a dangling
		// link, no permission: all of them are "no such file" to a client; the
		// cause stays in the chain for the log.
		return nil, nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("vod: stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, name)
	}
	return f, fi, nil
}

// FileKey returns the stream key an access decision about the file name is asked
// with: "app/stream" for "app/stream.flv", the first segment and the file's base name
// for deeper paths ("app/a/b/c.flv" is "app/c"), the name without ".flv" otherwise.
func FileKey(name string) string {
	base := name
	if len(base) > 4 && strings.EqualFold(base[len(base)-4:], ".flv") {
		base = base[:len(base)-4]
	}
	app, rest, ok := strings.Cut(base, "/")
	if !ok {
		return base
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		rest = rest[i+1:]
	}
	return app + "/" + rest
}

// PlayName maps the stream name of an RTMP play in app to a file name: a query
// ("?key=...") is dropped, an "flv:" prefix is removed and ".flv" added when
// missing, so "fixture", "fixture.flv" and "flv:fixture" in app "live" all name
// "live/fixture.flv".
func PlayName(app, name string) string {
	name, _, _ = strings.Cut(name, "?")
	name = strings.TrimPrefix(name, "flv:")
	if !strings.HasSuffix(strings.ToLower(name), ".flv") {
		name += ".flv"
	}
	return app + "/" + name
}

// OpenPlay opens the file an RTMP play of name in app asks for (see PlayName) and
// indexes it. Errors are those of Open and NewReader.
func (s *Source) OpenPlay(app, name string) (*File, error) {
	return s.OpenFile(PlayName(app, name))
}

// OpenFile opens and indexes the FLV file name (see Open).
func (s *Source) OpenFile(name string) (*File, error) {
	f, fi, err := s.Open(name)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vod: %s: %w", name, err)
	}
	return &File{Reader: r, f: f, Name: name}, nil
}

// File is an open, indexed FLV file. Close it when done.
type File struct {
	*Reader
	Name string // as given to OpenFile
	f    *os.File
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
