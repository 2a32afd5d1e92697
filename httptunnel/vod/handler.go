package vod

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mtrelay/mtrelay/relay"
)

// Mount registers GET (and so HEAD) /vod/{path...} on mux.
func (s *Source) Mount(mux *http.ServeMux) {
	mux.Handle("GET /vod/{path...}", s)
}

// ServeHTTP serves the .flv file named by the path after /vod/ as video/x-flv, with
// byte ranges, conditional requests and HEAD (http.ServeContent). Any name that is
// refused (see CheckName; a symlink out of the directory) or not found gets 404; the
// refusal is logged (info for a bad name, debug for a missing file). With
// Config.Access, a request the access chain refuses gets 403.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	if name == "" {
		name = strings.TrimPrefix(r.URL.Path, "/vod/")
	}
	if s.cfg.Access != nil && CheckName(name) == nil {
		_, _, err := relay.Decide(r.Context(), s.cfg.Access, s.cfg.AccessTimeout, relay.AccessRequest{
			Action: relay.ActionPlay, Key: FileKey(name), Query: r.URL.RawQuery, Protocol: "vod", Remote: r.RemoteAddr,
		})
		if err != nil {
			s.log.Warn().Str("remote", r.RemoteAddr).Str("name", name).Err(err).Msg("vod request refused")
			http.Error(w, "vod: forbidden: "+relay.DenialReason(err), http.StatusForbidden)
			return
		}
	}
	f, fi, err := s.Open(name)
	if err != nil {
		ev := s.log.Debug()
		if !errors.Is(err, ErrNotFound) {
			ev = s.log.Info()
		}
		ev.Str("remote", r.RemoteAddr).Str("name", name).Err(err).Msg("vod request refused")
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "video/x-flv")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

var _ http.Handler = (*Source)(nil)
