package httptunnel

import (
	"strings"
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestImports enforces STYLE.md §1: httptunnel may import the standard library,
// zerolog (and what zerolog needs) and relay, never rtmp or go-rtmp
// (→ tailscale tstest/deptest).
func TestImports(t *testing.T) {
	t.Parallel()
	forbidden := []string{"github.com/mtrelay/mtrelay/rtmp", "github.com/yutopp/go-rtmp", "github.com/yutopp/"}
	for _, dep := range relaytest.Deps(t, ".") {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") || strings.HasPrefix(dep, f) && strings.HasSuffix(f, "/") {
				t.Errorf("httptunnel depends on %s (forbidden: %s)", dep, f)
			}
		}
		if strings.HasPrefix(dep, "github.com/mtrelay/mtrelay/") &&
			!strings.HasPrefix(dep, "github.com/mtrelay/mtrelay/httptunnel") &&
			dep != "github.com/mtrelay/mtrelay/relay" && !strings.HasPrefix(dep, "github.com/mtrelay/mtrelay/relay/") {
			t.Errorf("httptunnel depends on %s; only relay is allowed", dep)
		}
	}
}
