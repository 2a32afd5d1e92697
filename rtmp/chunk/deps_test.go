package chunk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the package doc: the chunk layer imports only the
// standard library (go list marks standard packages with .Standard).
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/mtrelay/mtrelay/rtmp/chunk" {
			t.Errorf("rtmp/chunk depends on %s; it may import the standard library only", p)
		}
	}
}
