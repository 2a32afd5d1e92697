// Package hooks is an HTTP callback client in the style of nginx-rtmp's on_connect,
// on_publish, on_play and on_done: before an RTMP connect, a publish or a play (RTMP
// or HTTP viewers) the relay POSTs a body to a URL the operator runs, and the answer
// decides. A 2xx allows; a 3xx with a Location renames the stream to the last path
// element of that Location (the app stays), so viewers never see the publisher's
// stream key (for a connect, the Location names another app); any other status
// refuses. A hook that does not answer within Config.Timeout, or cannot be reached,
// refuses too, unless Config.FailOpen is set. When a publish the hooks allowed ends,
// the on_done URL is POSTed from a goroutine the Client owns; Close waits for those
// calls.
//
// # Bodies
//
// Config.Format "form" (the default) posts application/x-www-form-urlencoded, as
// nginx-rtmp does: call (connect, publish, play, done), app, name, addr (client IP),
// protocol (rtmp, rtmpt, rtmps, rtmpts, http-flv, hls, page), args (the raw query),
// tcurl (RTMP, without its query) and flashver (connect) when known, new_name (done,
// after a rename), then every query parameter as a field of its own. "json" posts
// application/json: {"call","app","name","addr","protocol","tcurl","args":{...}}
// (plus "flashver" and "new_name" when set), args holding the query parameters.
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
// Config.Timeout (or its ctx). The configuration is an atomic pointer that SetConfig
// replaces whole (live reload); each decision reads it once. Client.mu guards
// closed; the on_done goroutines are started under it (so Close never misses one)
// and counted in Client.done.
package hooks
