package session

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
)

// idCases drive TestParseID and seed FuzzParseID.
var idCases = []struct {
	name string
	in   string
	ok   bool
}{
	{"fresh", newID(idBytes), true},
	{"all zero", base64.RawURLEncoding.EncodeToString(make([]byte, idBytes)), true},
	{"empty", "", false},
	{"short", newID(16), false},
	{"long", newID(idBytes + 1), false},
	{"padded", base64.URLEncoding.EncodeToString(make([]byte, idBytes)), false},
	{"std alphabet", strings.Repeat("+", idLen), false},
	{"non-canonical last char", strings.Repeat("A", idLen-1) + "B", false},
	{"space", " " + newID(idBytes)[1:], false},
	{"quoted", `"` + newID(idBytes)[2:] + `"`, false},
	{"newline", strings.Repeat("A", idLen-1) + "\n", false},
	{"utf8", strings.Repeat("é", idLen/2) + "A", false},
}

func TestParseID(t *testing.T) {
	for _, c := range idCases {
		t.Run(c.name, func(t *testing.T) {
			if _, ok := parseID(c.in); ok != c.ok {
				t.Fatalf("parseID(%q) ok=%v, want %v", c.in, ok, c.ok)
			}
		})
	}
}

func TestCookieID(t *testing.T) {
	good := newID(idBytes)
	for _, c := range []struct {
		name, header, want string
		ok                 bool
	}{
		{"none", "", "", false},
		{"good", CookieName + "=" + good, good, true},
		{"junk", CookieName + "=x", "", false},
		{"junk then good", CookieName + "=x; other=1; " + CookieName + "=" + good, good, true},
		{"other name", "mtrelay_sessionx=" + good, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if c.header != "" {
				r.Header.Set("Cookie", c.header)
			}
			got, ok := cookieID(r)
			if got != c.want || ok != c.ok {
				t.Fatalf("cookieID = %q, %v; want %q, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// FuzzParseID: whatever parseID accepts is 32 bytes that encode back to exactly the
// input, as a cookie value and as a CSRF header; csrfOK agrees with equality.
func FuzzParseID(f *testing.F) {
	for _, c := range idCases {
		f.Add(c.in, newID(idBytes))
	}
	f.Fuzz(func(t *testing.T, s, token string) {
		b, ok := parseID(s)
		if ok {
			if len(b) != idBytes {
				t.Fatalf("parseID(%q) gave %d bytes", s, len(b))
			}
			if enc := base64.RawURLEncoding.EncodeToString(b); enc != s {
				t.Fatalf("parseID(%q) does not round-trip: %q", s, enc)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", CookieName+"="+s)
			if got, ok := cookieID(r); !ok || got != s {
				t.Fatalf("cookieID of a valid id %q = %q, %v", s, got, ok)
			}
		}
		if _, tokOK := parseID(token); tokOK {
			in := &instance{csrf: token}
			if in.csrfOK(s) != (s == token) {
				t.Fatalf("csrfOK(%q) with token %q = %v", s, token, !(s == token))
			}
		}
		// Any header value, split anywhere, never panics and never matches a
		// different token.
		for i := 0; i <= len(s); i += max(1, len(s)/4) {
			in := &instance{csrf: newID(idBytes)}
			if in.csrfOK(s[:i]) {
				t.Fatalf("csrfOK(%q) matched a random token", s[:i])
			}
		}
	})
}
