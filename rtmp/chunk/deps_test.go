package chunk

import (
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestDeps enforces the package doc: the chunk layer imports only the
// standard library (go list marks standard packages with .Standard).
func TestDeps(t *testing.T) {
	for _, p := range relaytest.Deps(t, ".") {
		if p != "github.com/mtrelay/mtrelay/rtmp/chunk" {
			t.Errorf("rtmp/chunk depends on %s; it may import the standard library only", p)
		}
	}
}
