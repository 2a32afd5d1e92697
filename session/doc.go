// Package session owns the relay's logged-in users: the mtrelay_session cookie, the
// in-memory application instance each cookie finds, the persistent PostgreSQL
// connection opened with the user's own role and password (pgx) and kept in that
// instance, idle and absolute expiry, the login, keys, publish-log, recordings and
// kick HTTP handlers and the embedded console page (GET / with a database, /console
// without), the embedded schema migrations, the stream-key check on publish (an
// relay.AccessController that asks the database through the service role, and records
// the end of each publish it allowed through AccessDecision.OnEnd), and the
// recordings table the recorder writes through the service role.
//
// Handlers elsewhere attach typed state to a browser's session with Value; a browser
// without a session then gets an anonymous one (no database connection, capped by
// Limits.MaxAnonymous). The limits can change while the relay runs (SetLimits), and
// Stats counts sessions, logins by result and database errors for metrics.
//
// PostgreSQL decides what a user sees: every user query runs on that user's own
// connection, so roles, grants and row-level security apply; the relay never runs a
// user's query under a shared login. Without a database URL the package still works:
// publishing is open (relay.AllowAll) and logins answer 503.
//
// session may import relay, pgx and zerolog (and the standard library); it must not
// import rtmp, httptunnel or cmd. A test enforces this.
//
// # Concurrency
//
// Store.mu guards the session map and the login-failure counters; it is never held
// during I/O. The limits are an atomic pointer, replaced whole by SetLimits. Each
// instance has its own mutex that serializes the use of its connection, so a slow
// query blocks only requests of the same session. The two locks never nest:
// Store.mu is released before an instance's mutex is taken. Closing an instance
// first cancels its context, which interrupts a running query (a cancel request to
// the server: the connection stays usable after a query timeout), then takes its
// mutex and closes the connection. An instance's state (Value) has a mutex of its
// own, never held during I/O, so a slow query does not hold up its handlers.
package session
