package hls

// Access decisions for HLS viewers. A viewer makes many requests (playlist reloads,
// LL-HLS blocking reloads, segments, parts), so Config.Access is asked only on
// playlist requests, and its allow is remembered per (stream path, query without the
// _HLS_ parameters, client IP) for Config.AccessTTL. Segment, part and init requests
// are served only to a client with an allowed playlist request of that stream and
// query within the last AccessTTL: gohlslib writes the playlist's query into every
// URI it lists, so a player's segment requests carry the same query (the token).

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mtrelay/mtrelay/relay"
)

// maxGrants bounds the remembered allows; past it, new viewers get 503 until old
// grants expire.
const maxGrants = 100000

// grantKey identifies a viewer for access decisions.
type grantKey struct {
	path  string // the stream as requested: "app/stream"
	query string // the request's query without _HLS_ parameters, normalised
	ip    string
}

// grant is an allowed playlist request.
type grant struct {
	key          string    // the stream to serve (a hook may have renamed it)
	decided      time.Time // when Access allowed it
	lastPlaylist time.Time // the last playlist request it allowed
}

// grants remembers allowed viewers. Its zero value is ready to use.
type grants struct {
	mu        sync.Mutex
	m         map[grantKey]*grant // guarded by mu
	lastPrune time.Time           // guarded by mu
}

// hlsQuery returns rawQuery without the LL-HLS _HLS_ parameters, encoded the way
// gohlslib writes it into the playlists' URIs.
func hlsQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return rawQuery
	}
	for k := range q {
		if strings.HasPrefix(k, "_HLS_") {
			delete(q, k)
		}
	}
	return q.Encode()
}

// authorize decides on one request for the stream key and returns the key to serve.
// When it returns false it has answered the request (403 or 503) and logged why.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	if s.cfg.Access == nil {
		return key, true
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	file := r.PathValue("file")
	if file == "gap.mp4" {
		// The placeholder URI of LL-HLS gap segments, listed without the query:
		// there is nothing behind it (gohlslib serves no such file).
		return key, true
	}
	gk := grantKey{path: key, query: hlsQuery(r.URL.RawQuery), ip: ip}
	playlist := strings.HasSuffix(file, ".m3u8")
	ttl := s.cfg.AccessTTL
	now := time.Now()

	g := &s.grants
	g.mu.Lock()
	gr := g.m[gk]
	if gr != nil && playlist && now.Sub(gr.decided) < ttl {
		gr.lastPlaylist = now
		k := gr.key
		g.mu.Unlock()
		return k, true
	}
	if !playlist {
		var k string
		if gr != nil && now.Sub(gr.lastPlaylist) < ttl {
			k = gr.key
		}
		g.mu.Unlock()
		if k == "" {
			s.log.Info().Str("stream", key).Str("remote", r.RemoteAddr).Str("file", file).
				Msg("hls media request refused: no recent authorized playlist request")
			http.Error(w, "hls: forbidden: no recent authorized playlist request for this stream and query", http.StatusForbidden)
			return key, false
		}
		return k, true
	}
	g.mu.Unlock()

	newKey, _, err := relay.Decide(r.Context(), s.cfg.Access, s.cfg.AccessTimeout, relay.AccessRequest{
		Action: relay.ActionPlay, Key: key, Query: gk.query, Protocol: Protocol, Remote: r.RemoteAddr,
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		delete(g.m, gk) // its segments stop too
		s.log.Warn().Str("stream", key).Str("remote", r.RemoteAddr).Err(err).Msg("hls viewer refused")
		http.Error(w, "hls: forbidden: "+relay.DenialReason(err), http.StatusForbidden)
		return key, false
	}
	if g.m == nil {
		g.m = make(map[grantKey]*grant)
	}
	if now.Sub(g.lastPrune) >= ttl || len(g.m) >= maxGrants {
		g.lastPrune = now
		for k, v := range g.m {
			if now.Sub(v.lastPlaylist) >= ttl && now.Sub(v.decided) >= ttl {
				delete(g.m, k)
			}
		}
	}
	if _, ok := g.m[gk]; !ok && len(g.m) >= maxGrants {
		s.log.Warn().Str("stream", key).Str("remote", r.RemoteAddr).Int("grants", len(g.m)).Msg("hls viewer refused: too many viewers")
		http.Error(w, "hls: too many viewers", http.StatusServiceUnavailable)
		return key, false
	}
	g.m[gk] = &grant{key: newKey, decided: now, lastPlaylist: now}
	return newKey, true
}
