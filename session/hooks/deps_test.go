package hooks_test

import (
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestImports enforces the package boundary in doc.go: hooks may depend on relay
// and zerolog (with their own dependencies) only, never on rtmp, httptunnel,
// session, pgx or cmd.
func TestImports(t *testing.T) {
	allowed := map[string]bool{"github.com/mtrelay/mtrelay/session/hooks": true}
	for _, p := range relaytest.Deps(t, "github.com/mtrelay/mtrelay/relay", "github.com/rs/zerolog") {
		allowed[p] = true
	}
	for _, p := range relaytest.Deps(t, "github.com/mtrelay/mtrelay/session/hooks") {
		if !allowed[p] {
			t.Errorf("hooks depends on %s: only relay, zerolog and the standard library are allowed", p)
		}
	}
}
