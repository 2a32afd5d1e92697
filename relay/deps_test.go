package relay_test

import (
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestImports enforces the package boundary in doc.go: relay depends on the
// standard library and zerolog (with zerolog's own dependencies) only, so it can
// never learn a wire format.
func TestImports(t *testing.T) {
	allowed := map[string]bool{"github.com/mtrelay/mtrelay/relay": true}
	for _, p := range relaytest.Deps(t, "github.com/rs/zerolog") {
		allowed[p] = true
	}
	for _, p := range relaytest.Deps(t, "github.com/mtrelay/mtrelay/relay") {
		if !allowed[p] {
			t.Errorf("relay depends on %s: only the standard library and github.com/rs/zerolog are allowed", p)
		}
	}
}
