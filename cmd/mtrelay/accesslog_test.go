package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestAccessLog checks one line per request with method, path without the query,
// status, bytes, duration and remote; RTMPT tunnel ids are cut from the path; an
// HTTP-FLV response (hijacked) still streams and is logged.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	r, logs := startRelayLogs(t)
	resp, err := http.Get("http://" + r.httpAddr + "/healthz?key=sekrit")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lines := logs.find(func(m map[string]any) bool { return m["message"] == "http request" && m["path"] == "/healthz" })
	if len(lines) != 1 {
		t.Fatalf("%d access log lines for /healthz, want 1", len(lines))
	}
	l := lines[0]
	if l["level"] != "debug" || l["method"] != "GET" || l["status"] != 200.0 || l["bytes"] != 3.0 || l["duration"] == nil || !strings.HasPrefix(l["remote"].(string), "127.0.0.1:") {
		t.Errorf("access log line %v", l)
	}

	// An RTMPT publisher and player: the tunnel ids never reach the log.
	const key = "live/accesslog"
	tags := fixtureTags(t)[:40]
	pl := r.player(t, "rtmpt", key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	read := goRead(t, ctx, pl, nil)
	// An HTTP-FLV viewer through the access log wrapper (it hijacks the connection).
	flvCtx, flvCancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(flvCtx, "GET", "http://"+r.httpAddr+"/"+key+".flv", nil)
	flvResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pub := r.publisher(t, "rtmpt", key)
	if err := publishAll(ctx, pub, tags, 0, newPacer(0, 0)); err != nil {
		t.Fatal(err)
	}
	wantUnpublished(t, "rtmpt player", <-read)
	hdr := make([]byte, 13)
	if _, err := io.ReadFull(flvResp.Body, hdr); err != nil || string(hdr[:3]) != "FLV" {
		t.Fatalf("HTTP-FLV through the access log: %q %v", hdr, err)
	}
	flvCancel()
	flvResp.Body.Close()

	var sends int
	for _, l := range logs.find(func(m map[string]any) bool { return m["message"] == "http request" }) {
		p := l["path"].(string)
		for _, pre := range []string{"/send/", "/idle/", "/close/"} {
			if strings.HasPrefix(p, pre) && p != pre+"…" {
				t.Errorf("tunnel path logged: %s", p)
			}
		}
		if strings.Contains(p, "?") || strings.Contains(p, "sekrit") {
			t.Errorf("query logged: %s", p)
		}
		if p == "/send/…" {
			sends++
		}
	}
	if sends == 0 {
		t.Error("no /send/… access log lines")
	}
	waitFor(t, 10*time.Second, "the HTTP-FLV access log line", func() bool {
		return len(logs.find(func(m map[string]any) bool { return m["path"] == "/"+key+".flv" && m["hijacked"] == true })) == 1
	})
}

// TestAccessLogLevels checks --access-log info and off.
func TestAccessLogLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		setting string
		want    []string // levels of the lines written
	}{{"info", []string{"info"}}, {"debug", []string{"debug"}}, {"off", nil}} {
		t.Run(tc.setting, func(t *testing.T) {
			sink := &logSink{tw: zerolog.NewTestWriter(t)}
			a := newAccessLog(tc.setting, zerolog.New(sink), nil)
			h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
			var got []string
			for _, l := range sink.find(func(map[string]any) bool { return true }) {
				got = append(got, l["level"].(string))
				if l["status"] != 418.0 {
					t.Errorf("line %v", l)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("levels %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLoggingWriterPassThrough checks that the wrapper keeps Flush, ReadFrom and
// http.ResponseController working, and counts bytes.
func TestLoggingWriterPassThrough(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	w := &loggingWriter{ResponseWriter: rec}
	if n, err := w.ReadFrom(strings.NewReader("hello")); n != 5 || err != nil {
		t.Fatalf("ReadFrom: %d %v", n, err)
	}
	w.Flush()
	if !rec.Flushed {
		t.Error("Flush not passed through")
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Errorf("ResponseController.Flush: %v", err)
	}
	if _, _, err := w.Hijack(); err == nil {
		t.Error("Hijack on a recorder succeeded")
	}
	if w.status != 200 || w.bytes != 5 || w.hijacked {
		t.Errorf("status %d bytes %d hijacked %v", w.status, w.bytes, w.hijacked)
	}
}
