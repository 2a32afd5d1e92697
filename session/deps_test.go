package session_test

import (
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestImports enforces the package boundary in doc.go: session may depend on relay,
// pgx and zerolog (with their own dependencies) only, never on rtmp, httptunnel or
// cmd.
func TestImports(t *testing.T) {
	allowed := map[string]bool{"github.com/mtrelay/mtrelay/session": true}
	for _, p := range relaytest.Deps(t, "github.com/mtrelay/mtrelay/relay", "github.com/rs/zerolog",
		"github.com/jackc/pgx/v5", "github.com/jackc/pgx/v5/pgxpool") {
		allowed[p] = true
	}
	for _, p := range relaytest.Deps(t, "github.com/mtrelay/mtrelay/session") {
		if !allowed[p] {
			t.Errorf("session depends on %s: only relay, pgx, zerolog and the standard library are allowed", p)
		}
	}
}
