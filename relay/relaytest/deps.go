// Package relaytest holds test helpers shared by the relay's packages. It imports only
// the standard library.
package relaytest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Deps returns the packages outside the standard library that pkgs depend on, pkgs
// themselves included, as `go list -deps` reports them for the build (test files left
// out). "." is the package whose tests are running. Each package's import rule (see
// its doc.go) is a test over this list.
func Deps(t testing.TB, pkgs ...string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not on PATH")
	}
	args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)
	out, err := exec.CommandContext(t.Context(), goTool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, out)
	}
	return strings.Fields(string(out))
}

// CheckDeps fails t for every dependency of the package under test (".") that is
// go-rtmp or an mtrelay package not in allowed; allowed lists the package itself
// too. name starts each failure: "<name> depends on <package>". It is the import
// rule of the httptunnel media packages, which may use relay and a few httptunnel
// siblings only.
func CheckDeps(t testing.TB, name string, allowed ...string) {
	t.Helper()
	for _, dep := range Deps(t, ".") {
		if strings.Contains(dep, "go-rtmp") || strings.HasPrefix(dep, "github.com/mtrelay/mtrelay/") && !slices.Contains(allowed, dep) {
			t.Errorf("%s depends on %s", name, dep)
		}
	}
}
