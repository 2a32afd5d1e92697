package hls

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
)

// TestAuthorizeGrants checks the HLS access cache: playlists ask Config.Access once
// per (stream, query without _HLS_ parameters, client IP) per AccessTTL; media needs
// a playlist request allowed within AccessTTL for the same stream, query and IP; a
// rename applies to the media too; a refusal is a 403 and drops the grant.
func TestAuthorizeGrants(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		deny := atomic.Bool{}
		ac := relay.AccessFunc(func(_ context.Context, req relay.AccessRequest) (relay.AccessDecision, error) {
			calls.Add(1)
			if req.Protocol != Protocol || req.Action != relay.ActionPlay || strings.Contains(req.Query, "_HLS_") {
				t.Errorf("request %+v", req)
			}
			switch {
			case deny.Load() || !strings.Contains(req.Query, "token=good"):
				return relay.AccessDecision{Reason: "bad token"}, nil
			case req.Key == "live/secret":
				return relay.AccessDecision{Allow: true, Key: "live/public"}, nil
			}
			return relay.AccessDecision{Allow: true}, nil
		})
		log := zerolog.New(zerolog.NewTestWriter(t))
		hub, err := relay.New(relay.Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		s, err := New(Config{Access: ac}, log, hub)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())

		// try runs authorize for one request and returns the key, or "" and the status.
		try := func(key, file, query, ip string) (string, int) {
			r := httptest.NewRequest(http.MethodGet, "/"+key+"/"+file+"?"+query, nil)
			r.RemoteAddr = ip + ":5000"
			r.SetPathValue("file", file)
			w := httptest.NewRecorder()
			got, ok := s.authorize(w, r, key)
			if !ok {
				return "", w.Code
			}
			return got, 0
		}
		want := func(what, gotKey string, gotCode int, wantKey string, wantCode int, wantCalls int32) {
			t.Helper()
			if gotKey != wantKey || gotCode != wantCode || calls.Load() != wantCalls {
				t.Errorf("%s: key %q status %d after %d calls, want %q %d after %d", what, gotKey, gotCode, calls.Load(), wantKey, wantCode, wantCalls)
			}
		}
		const ip, other = "192.0.2.1", "192.0.2.2"
		k, c := try("live/a", "seg1.mp4", "token=good", ip)
		want("media before any playlist", k, c, "", 403, 0)
		k, c = try("live/a", "index.m3u8", "token=good", ip)
		want("multivariant playlist", k, c, "live/a", 0, 1)
		k, c = try("live/a", "video1_stream.m3u8", "_HLS_msn=7&token=good&_HLS_part=2", ip)
		want("blocking media playlist reload", k, c, "live/a", 0, 1)
		k, c = try("live/a", "x_video1_part3.mp4", "token=good", ip)
		want("part", k, c, "live/a", 0, 1)
		k, c = try("live/a", "x_video1_part3.mp4", "token=other", ip)
		want("part with another query", k, c, "", 403, 1)
		k, c = try("live/a", "x_video1_part3.mp4", "token=good", other)
		want("part from another IP", k, c, "", 403, 1)
		k, c = try("live/a", "gap.mp4", "", other)
		want("gap placeholder", k, c, "live/a", 0, 1)

		time.Sleep(6 * time.Second)
		k, c = try("live/a", "video1_stream.m3u8", "token=good", ip)
		want("playlist within the TTL", k, c, "live/a", 0, 1)
		time.Sleep(6 * time.Second) // 12s after the decision, 6s after the last playlist
		k, c = try("live/a", "seg2.mp4", "token=good", ip)
		want("media 6s after a playlist", k, c, "live/a", 0, 1)
		k, c = try("live/a", "video1_stream.m3u8", "token=good", ip)
		want("playlist after the TTL asks again", k, c, "live/a", 0, 2)
		time.Sleep(11 * time.Second)
		k, c = try("live/a", "seg3.mp4", "token=good", ip)
		want("media long after the last playlist", k, c, "", 403, 2)

		deny.Store(true)
		k, c = try("live/a", "index.m3u8", "token=good", ip)
		want("refused playlist", k, c, "", 403, 3)
		deny.Store(false)

		k, c = try("live/secret", "index.m3u8", "token=good", ip)
		want("renamed playlist", k, c, "live/public", 0, 4)
		k, c = try("live/secret", "seg1.mp4", "token=good", ip)
		want("renamed media", k, c, "live/public", 0, 4)
		k, c = try("live/b", "index.m3u8", "token=bad", ip)
		want("bad token", k, c, "", 403, 5)
	})
}

// TestHLSQuery checks that the grant key's query drops LL-HLS parameters and is
// normalised like gohlslib's playlist URIs.
func TestHLSQuery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"token=a", "token=a"},
		{"_HLS_msn=3&token=a&_HLS_part=1", "token=a"},
		{"b=2&a=1", "a=1&b=2"},
		{"_HLS_skip=YES", ""},
	} {
		if got := hlsQuery(tc.in); got != tc.want {
			t.Errorf("hlsQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzHLSQuery: any client query gives a grant-key query without _HLS_ parameters,
// and normalising it again changes nothing.
func FuzzHLSQuery(f *testing.F) {
	for _, s := range []string{"", "token=a", "_HLS_msn=3&token=a&_HLS_part=1", "b=2&a=1", "%zz", "a=1;b=2", "_HLS_=x&&="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := hlsQuery(q)
		if again := hlsQuery(got); again != got {
			t.Fatalf("hlsQuery(%q) = %q, then %q", q, got, again)
		}
		if v, err := url.ParseQuery(got); err == nil {
			for k := range v {
				if strings.HasPrefix(k, "_HLS_") {
					t.Fatalf("hlsQuery(%q) = %q keeps %s", q, got, k)
				}
			}
		}
	})
}
