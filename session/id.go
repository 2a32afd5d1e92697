package session

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// idBytes is the size of session ids and CSRF tokens: 256 bits from crypto/rand.
const idBytes = 32

// idLen is the length of an encoded id: idBytes in unpadded base64url.
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

// newID returns n random bytes from crypto/rand, base64url-encoded.
func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseID reports whether s has the form of a session id or CSRF token made by
// newID(idBytes): 43 characters of unpadded, canonical base64url for 32 bytes.
// Cookie values and X-CSRF-Token headers are checked with it before any lookup, so
// that junk never reaches the session map or a comparison.
func parseID(s string) ([]byte, bool) {
	if len(s) != idLen {
		return nil, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != idBytes {
		return nil, false
	}
	return b, true
}

// cookieID returns the request's mtrelay_session cookie value if it is well formed.
// Several cookies of that name (a parent domain's, say) are all tried in order: the
// first well-formed one wins.
func cookieID(r *http.Request) (string, bool) {
	for _, c := range r.CookiesNamed(CookieName) {
		if _, ok := parseID(c.Value); ok {
			return c.Value, true
		}
	}
	return "", false
}
