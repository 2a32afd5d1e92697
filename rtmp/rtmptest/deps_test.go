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
		t.Fatal("no go command on PATH")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/mtrelay/mtrelay/rtmp/rtmptest", p == "github.com/mtrelay/mtrelay/rtmp/chunk", p == "github.com/mtrelay/mtrelay/rtmp/amf":
		case p == "github.com/yutopp/go-rtmp/handshake", p == "github.com/yutopp/go-amf0", p == "github.com/pkg/errors":
		default:
			t.Errorf("rtmp/rtmptest depends on %s", p)
		}
	}
}
