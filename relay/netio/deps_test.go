package netio_test

import (
	"strings"
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestImports checks that netio depends on the standard library only: rtmp and
// httptunnel both use it, so it must not pull either in.
func TestImports(t *testing.T) {
	for _, p := range relaytest.Deps(t, "github.com/mtrelay/mtrelay/relay/netio") {
		if p != "github.com/mtrelay/mtrelay/relay/netio" && !strings.HasPrefix(p, "golang.org/x/") {
			t.Errorf("netio depends on %s: only the standard library is allowed", p)
		}
	}
}
