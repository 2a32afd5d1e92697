package relay_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the package boundary in doc.go: relay depends on the
// standard library and zerolog (with zerolog's own dependencies) only, so it can
// never learn a wire format.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not on PATH")
	}
	list := func(pkg string) []string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps",
			"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	allowed := map[string]bool{"github.com/mtrelay/mtrelay/relay": true}
	for _, p := range list("github.com/rs/zerolog") {
		allowed[p] = true
	}
	for _, p := range list("github.com/mtrelay/mtrelay/relay") {
		if !allowed[p] {
			t.Errorf("relay depends on %s: only the standard library and github.com/rs/zerolog are allowed", p)
		}
	}
}
