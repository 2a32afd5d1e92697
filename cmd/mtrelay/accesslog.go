package main

// The HTTP access log: one line per request, when the request ends, at the level of
// --access-log (info, debug or off; a reload changes it live).

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// accessLog is the middleware that writes the access log.
type accessLog struct {
	log   zerolog.Logger // component=http; immutable
	lw    *levelWriter   // the root logger's filter, to skip dropped lines; may be nil
	level atomic.Int32   // zerolog.Level; zerolog.Disabled for off
}

// accessLevel maps an --access-log value to a level; anything but info and debug
// is off.
func accessLevel(s string) zerolog.Level {
	switch s {
	case "info":
		return zerolog.InfoLevel
	case "debug":
		return zerolog.DebugLevel
	}
	return zerolog.Disabled
}

func newAccessLog(setting string, log zerolog.Logger, lw *levelWriter) *accessLog {
	a := &accessLog{log: log.With().Str("component", "http").Logger(), lw: lw}
	a.setLevel(setting)
	return a
}

func (a *accessLog) setLevel(setting string) { a.level.Store(int32(accessLevel(setting))) }

// wrap returns h with every request logged.
func (a *accessLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lvl := zerolog.Level(a.level.Load())
		if lvl == zerolog.Disabled || !a.lw.enabled(lvl) || a.log.GetLevel() > lvl {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		lw := &loggingWriter{ResponseWriter: w}
		defer func() {
			// Also when the handler panics (net/http recovers it): the line says 0.
			ev := a.log.WithLevel(lvl).
				Str("method", r.Method).
				Str("path", accessPath(r.URL.Path)).
				Int("status", lw.status).
				Int64("bytes", lw.bytes).
				Dur("duration", time.Since(start)).
				Str("remote", r.RemoteAddr)
			if lw.hijacked {
				ev = ev.Bool("hijacked", true) // the handler wrote its own response
			}
			ev.Msg("http request")
		}()
		h.ServeHTTP(lw, r)
	})
}

// accessPath is the path as logged: the query is never part of it (stream keys travel
// as ?key=), and RTMPT tunnel ids, which authorise every later request of the tunnel,
// are cut: /send/<id>/<seq> is logged as /send/….
func accessPath(p string) string {
	for _, pre := range []string{"/send/", "/idle/", "/close/"} {
		if strings.HasPrefix(p, pre) {
			return pre + "…"
		}
	}
	return p
}

// loggingWriter counts what a handler writes. It passes Flush, Hijack and ReadFrom
// through, and Unwrap serves http.ResponseController (SetWriteDeadline and the rest).
type loggingWriter struct {
	http.ResponseWriter
	status   int   // 0 until the header is written
	bytes    int64 // body bytes written through the ResponseWriter
	hijacked bool
}

var (
	_ http.Flusher  = (*loggingWriter)(nil)
	_ http.Hijacker = (*loggingWriter)(nil)
	_ io.ReaderFrom = (*loggingWriter)(nil)
)

func (w *loggingWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 { // 1xx headers come before the final one
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps net/http's sendfile path for io.Copy into the response.
func (w *loggingWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

func (w *loggingWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *loggingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, brw, err
}

// Unwrap is for http.ResponseController.
func (w *loggingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
