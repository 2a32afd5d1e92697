package httptunnel

import (
	"strconv"
	"strings"
)

// command is the RTMPT request kind, the first path segment (Red5 RTMPT; rtmpt.md §3.1).
type command uint8

const (
	cmdOpen  command = iota + 1 // POST /open/1
	cmdSend                     // POST /send/<id>/<seq>
	cmdIdle                     // POST /idle/<id>/<seq>
	cmdClose                    // POST /close/<id>/<seq>
	cmdIdent                    // POST /fcs/ident2 (Flash only; always 404)
)

// String returns the path segment of c.
func (c command) String() string {
	switch c {
	case cmdOpen:
		return "open"
	case cmdSend:
		return "send"
	case cmdIdle:
		return "idle"
	case cmdClose:
		return "close"
	case cmdIdent:
		return "fcs"
	}
	return "command(" + strconv.Itoa(int(c)) + ")"
}

// maxIDLen caps an id in a path: librtmp and ffmpeg keep ids below 64 bytes (rtmpt.md §3.1).
const maxIDLen = 62

// parsePath parses an RTMPT request path. It returns errNotFound for anything that is
// not an RTMPT path (wrong command, shape or id characters) and errBadSeq when only the
// sequence number is wrong: not decimal, a leading zero, or above 2^64-1. Accepted paths
// are canonical: appendPath(nil, cmd, id, seq) gives p back.
func parsePath(p string) (cmd command, id string, seq uint64, err error) {
	switch p {
	case "/open/1":
		return cmdOpen, "", 1, nil
	case "/fcs/ident2":
		return cmdIdent, "", 0, nil
	}
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return 0, "", 0, errNotFound
	}
	name, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", 0, errNotFound
	}
	switch name {
	case "send":
		cmd = cmdSend
	case "idle":
		cmd = cmdIdle
	case "close":
		cmd = cmdClose
	default:
		return 0, "", 0, errNotFound
	}
	id, seqText, ok := strings.Cut(rest, "/")
	if !ok || !validID(id) {
		return 0, "", 0, errNotFound
	}
	seq, ok = parseSeq(seqText)
	if !ok {
		return 0, "", 0, errBadSeq
	}
	return cmd, id, seq, nil
}

// validID reports whether id is 1 to maxIDLen ASCII letters and digits. Only ids made
// by newID exist; this just keeps junk out of lookups and logs.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// parseSeq parses a canonical decimal uint64: no sign, no leading zero unless "0".
// ffmpeg prints it with PRId64, librtmp with %d, so neither sends leading zeros.
func parseSeq(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// appendPath appends the request path of cmd to b; the inverse of parsePath.
func appendPath(b []byte, cmd command, id string, seq uint64) []byte {
	switch cmd {
	case cmdOpen:
		return append(b, "/open/1"...)
	case cmdIdent:
		return append(b, "/fcs/ident2"...)
	}
	b = append(b, '/')
	b = append(b, cmd.String()...)
	b = append(b, '/')
	b = append(b, id...)
	b = append(b, '/')
	return strconv.AppendUint(b, seq, 10)
}
