package rtmptest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the package doc: rtmptest may use rtmp/chunk, go-rtmp's
// handshake and go-amf0, but not rtmp or relay, whose tests import it.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/mtrelay/mtrelay/rtmp/rtmptest", p == "github.com/mtrelay/mtrelay/rtmp/chunk":
		case p == "github.com/yutopp/go-rtmp/handshake", p == "github.com/yutopp/go-amf0", p == "github.com/pkg/errors":
		default:
			t.Errorf("rtmp/rtmptest depends on %s", p)
		}
	}
}
