package relay_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
)

// keyCases drives TestKey and seeds FuzzKey.
var keyCases = []struct {
	name, app, stream string
	key, query        string
	valid             bool
}{
	{"plain", "live", "cam", "live/cam", "", true},
	{"query", "live", "cam?key=K&x=1", "live/cam", "key=K&x=1", true},
	{"empty query", "live", "cam?", "live/cam", "", true},
	{"second question mark kept in query", "live", "cam?a=?b", "live/cam", "a=?b", true},
	{"unicode", "live", "kamera-ü", "live/kamera-ü", "", true},
	{"empty name", "live", "", "live/", "", false},
	{"empty name with query", "live", "?key=K", "live/", "key=K", false},
	{"empty app", "", "cam", "/cam", "", false},
	{"dotdot", "live", "..", "live/..", "", false},
	{"dot app", ".", "cam", "./cam", "", false},
	{"slash in name", "live", "a/b", "live/a/b", "", false},
	{"backslash", "live", `a\b`, `live/a\b`, "", false},
	{"control char", "live", "a\nb", "live/a\nb", "", false},
	{"DEL", "live", "a\x7fb", "live/a\x7fb", "", false},
	{"invalid UTF-8", "live", "a\xffb", "live/a\xffb", "", false},
	{"too long", "live", strings.Repeat("x", relay.MaxKeyLen), "live/" + strings.Repeat("x", relay.MaxKeyLen), "", false},
	{"longest", "live", strings.Repeat("x", relay.MaxKeyLen-5), "live/" + strings.Repeat("x", relay.MaxKeyLen-5), "", true},
}

func TestKey(t *testing.T) {
	h := newHub(t, relay.Config{})
	for _, tc := range keyCases {
		t.Run(tc.name, func(t *testing.T) {
			key, query := relay.Key(tc.app, tc.stream)
			if key != tc.key || query != tc.query {
				t.Errorf("Key(%q, %q) = %q, %q; want %q, %q", tc.app, tc.stream, key, query, tc.key, tc.query)
			}
			err := relay.ValidateKey(key)
			if (err == nil) != tc.valid {
				t.Errorf("ValidateKey(%q) = %v, want valid=%v", key, err, tc.valid)
			}
			if tc.valid {
				return
			}
			if _, err := h.Publish(key, relay.PublisherInfo{}); !errors.Is(err, relay.ErrBadKey) {
				t.Errorf("Publish(%q) = %v, want ErrBadKey", key, err)
			}
			if _, err := h.Subscribe(key, relay.SubscribeOptions{}); !errors.Is(err, relay.ErrBadKey) {
				t.Errorf("Subscribe(%q) = %v, want ErrBadKey", key, err)
			}
		})
	}
	if n := len(h.Streams()); n != 0 {
		t.Errorf("bad keys left %d streams", n)
	}
}

func TestValidateKeyOnlyOneSlash(t *testing.T) {
	for _, key := range []string{"", "/", "live", "live/", "/cam", "a/b/c", "a//b"} {
		if relay.ValidateKey(key) == nil {
			t.Errorf("ValidateKey(%q) = nil, want ErrBadKey", key)
		}
	}
}

func TestNewRejectsNegative(t *testing.T) {
	cases := []struct {
		field string
		cfg   relay.Config
	}{
		{"QueuePackets", relay.Config{QueuePackets: -1}},
		{"QueueBytes", relay.Config{QueueBytes: -1}},
		{"QueueDuration", relay.Config{QueueDuration: -1}},
		{"SlowGrace", relay.Config{SlowGrace: -1}},
		{"GOPFrames", relay.Config{GOPFrames: -1}},
		{"GOPBytes", relay.Config{GOPBytes: -1}},
		{"PlayWait", relay.Config{PlayWait: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			_, err := relay.New(tc.cfg, zeroLog())
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("New = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

// FuzzKey checks that Key and ValidateKey never panic, that Key keeps every byte of
// its input (key and query give back app and name), and that a key ValidateKey
// accepts round-trips: Key of its two parts returns it unchanged with no query.
func FuzzKey(f *testing.F) {
	for _, tc := range keyCases {
		f.Add(tc.app, tc.stream)
	}
	f.Fuzz(func(t *testing.T, app, name string) {
		key, query := relay.Key(app, name)
		whole := key
		if strings.Contains(name, "?") {
			whole += "?" + query
		}
		if whole != app+"/"+name {
			t.Fatalf("Key(%q, %q) = %q, %q: bytes lost", app, name, key, query)
		}
		if relay.ValidateKey(key) != nil {
			return
		}
		if len(key) > relay.MaxKeyLen || strings.Count(key, "/") != 1 || strings.Contains(key, "?") {
			t.Fatalf("ValidateKey accepted %q", key)
		}
		a, n, _ := strings.Cut(key, "/")
		if a != app {
			t.Fatalf("valid key %q from Key(%q, %q) has app %q", key, app, name, a)
		}
		if k2, q2 := relay.Key(a, n); k2 != key || q2 != "" {
			t.Fatalf("Key(%q, %q) = %q, %q; want %q and no query", a, n, k2, q2, key)
		}
	})
}
