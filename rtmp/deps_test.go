package rtmp

import (
	"strings"
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestImports enforces the package boundary in doc.go with go list -deps.
func TestImports(t *testing.T) {
	for _, p := range relaytest.Deps(t, ".") {
		switch {
		case strings.HasPrefix(p, "github.com/mtrelay/mtrelay/httptunnel"),
			strings.HasPrefix(p, "github.com/mtrelay/mtrelay/session"),
			strings.HasPrefix(p, "github.com/mtrelay/mtrelay/cmd"),
			p == "github.com/yutopp/go-rtmp", // the conn/server layer we replace
			p == "github.com/sirupsen/logrus":
			t.Errorf("rtmp must not depend on %s", p)
		}
	}
}
