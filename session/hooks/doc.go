// Package hooks is an HTTP callback client in the style of nginx-rtmp's on_publish,
// on_play and on_done: before a publish or play the relay POSTs a form to a URL the
// operator runs, and the answer decides. A 2xx allows; a 3xx with a Location renames
// the stream to the last path element of that Location (the app stays), so viewers
// never see the publisher's stream key; any other status refuses. A hook that does
// not answer within Config.Timeout, or cannot be reached, refuses too, unless
// Config.FailOpen is set. When a publish the hooks allowed ends, the on_done URL is
// POSTed from a goroutine the Client owns; Close waits for those calls.
//
// The Client is a relay.AccessController, so protocol layers use it the way they use
// the stream-key database (session.Store); relay.AllOf composes the two.
//
// hooks lives under session because session owns the per-user access decisions
// (who may publish and play what); it is a sub-package so that the session package
// itself stays about cookies and database connections. It may import relay, zerolog
// and the standard library; it must not import rtmp, httptunnel, session (pgx) or cmd.
// A test enforces this.
//
// # Concurrency
//
// Authorize runs on the requesting connection's goroutine and blocks for at most
// Config.Timeout (or its ctx). Client.mu guards closed; the on_done goroutines are
// started under it (so Close never misses one) and counted in Client.done.
package hooks
