package hooks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the package boundary in doc.go: hooks may depend on relay
// and zerolog (with their own dependencies) only, never on rtmp, httptunnel,
// session, pgx or cmd.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not on PATH")
	}
	list := func(pkgs ...string) []string {
		t.Helper()
		args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)
		out, err := exec.CommandContext(t.Context(), goTool, args...).Output()
		if err != nil {
			t.Fatalf("go list -deps %v: %v", pkgs, err)
		}
		return strings.Fields(string(out))
	}
	allowed := map[string]bool{"github.com/mtrelay/mtrelay/session/hooks": true}
	for _, p := range list("github.com/mtrelay/mtrelay/relay", "github.com/rs/zerolog") {
		allowed[p] = true
	}
	for _, p := range list("github.com/mtrelay/mtrelay/session/hooks") {
		if !allowed[p] {
			t.Errorf("hooks depends on %s: only relay, zerolog and the standard library are allowed", p)
		}
	}
}
