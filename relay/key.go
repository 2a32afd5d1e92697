package relay

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxKeyLen is the longest stream key ("app/stream") the hub accepts, in bytes.
const MaxKeyLen = 256

// Key returns the stream key for app and a stream name that may carry a query
// ("mystream?key=K"): it returns "app/mystream" and the query "key=K".
// Key does not validate; Publish and Subscribe reject a bad key with ErrBadKey.
func Key(app, name string) (key, query string) {
	name, query, _ = strings.Cut(name, "?")
	return app + "/" + name, query
}

// ValidateKey returns ErrBadKey unless key is "app/stream" where both parts are
// non-empty, not "." or "..", contain no '/', '\\', '?', control characters or
// invalid UTF-8, and the whole key is at most MaxKeyLen bytes.
func ValidateKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return ErrBadKey
	}
	app, name, ok := strings.Cut(key, "/")
	if !ok || !validKeyPart(app) || !validKeyPart(name) {
		return ErrBadKey
	}
	return nil
}

// validKeyPart checks one half of a key; a '/' in name makes it fail here.
func validKeyPart(s string) bool {
	if s == "" || s == "." || s == ".." || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '/' || r == '\\' || r == '?' {
			return false
		}
	}
	return true
}
