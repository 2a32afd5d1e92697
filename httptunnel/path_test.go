package httptunnel

import (
	"errors"
	"strings"
	"testing"
)

const testID = "0123456789abcdef0123456789abcdef"

// pathCases drives TestParsePath and seeds FuzzTunnelPath.
var pathCases = []struct {
	name string
	path string
	cmd  command
	id   string
	seq  uint64
	err  error
}{
	{"open", "/open/1", cmdOpen, "", 1, nil},
	{"ident2", "/fcs/ident2", cmdIdent, "", 0, nil},
	{"send", "/send/" + testID + "/0", cmdSend, testID, 0, nil},
	{"idle", "/idle/" + testID + "/42", cmdIdle, testID, 42, nil},
	{"close", "/close/" + testID + "/7", cmdClose, testID, 7, nil},
	{"max seq", "/idle/abc/18446744073709551615", cmdIdle, "abc", 1<<64 - 1, nil},
	{"62-char id", "/send/" + strings.Repeat("Z", 62) + "/1", cmdSend, strings.Repeat("Z", 62), 1, nil},
	{"63-char id", "/send/" + strings.Repeat("z", 63) + "/1", 0, "", 0, errNotFound},
	{"open 0", "/open/0", 0, "", 0, errNotFound},
	{"no slash", "send/abc/1", 0, "", 0, errNotFound},
	{"empty", "", 0, "", 0, errNotFound},
	{"root", "/", 0, "", 0, errNotFound},
	{"unknown command", "/poll/abc/1", 0, "", 0, errNotFound},
	{"no seq", "/send/abc", 0, "", 0, errNotFound},
	{"empty id", "/send//1", 0, "", 0, errNotFound},
	{"id with dash", "/send/a-b/1", 0, "", 0, errNotFound},
	{"extra segment", "/send/abc/1/2", 0, "", 0, errBadSeq},
	{"trailing slash", "/send/abc/1/", 0, "", 0, errBadSeq},
	{"empty seq", "/send/abc/", 0, "", 0, errBadSeq},
	{"leading zero", "/send/abc/007", 0, "", 0, errBadSeq},
	{"plus sign", "/send/abc/+1", 0, "", 0, errBadSeq},
	{"negative", "/send/abc/-1", 0, "", 0, errBadSeq},
	{"overflow", "/send/abc/18446744073709551616", 0, "", 0, errBadSeq},
	{"hex seq", "/send/abc/0x1", 0, "", 0, errBadSeq},
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	for _, tc := range pathCases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, id, seq, err := parsePath(tc.path)
			if !errors.Is(err, tc.err) {
				t.Fatalf("parsePath(%q) error %v, want %v", tc.path, err, tc.err)
			}
			if err != nil {
				return
			}
			if cmd != tc.cmd || id != tc.id || seq != tc.seq {
				t.Errorf("parsePath(%q) = %v %q %d, want %v %q %d", tc.path, cmd, id, seq, tc.cmd, tc.id, tc.seq)
			}
			if got := string(appendPath(nil, cmd, id, seq)); got != tc.path {
				t.Errorf("appendPath = %q, want %q", got, tc.path)
			}
		})
	}
}

// FuzzTunnelPath checks that the path parser never panics, that what it accepts
// formats back to the same path, and that every accepted sequence number is usable.
func FuzzTunnelPath(f *testing.F) {
	for _, tc := range pathCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		cmd, id, seq, err := parsePath(p)
		if err != nil {
			if !errors.Is(err, errNotFound) && !errors.Is(err, errBadSeq) {
				t.Fatalf("parsePath(%q): unexpected error %v", p, err)
			}
			return
		}
		if got := string(appendPath(nil, cmd, id, seq)); got != p {
			t.Fatalf("parsePath(%q) = %v %q %d, formats back as %q", p, cmd, id, seq, got)
		}
		if (cmd == cmdSend || cmd == cmdIdle || cmd == cmdClose) && !validID(id) {
			t.Fatalf("parsePath(%q) accepted id %q", p, id)
		}
	})
}
