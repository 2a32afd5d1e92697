package rtmp

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the package boundary in doc.go with go list -deps.
func TestImports(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
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
