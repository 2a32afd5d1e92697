package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// examplePath is the sample config file at the repository root.
const examplePath = "../../mtrelay.example.yaml"

// exampleConfig renders every flag (but --config) as a YAML key set to its default,
// with its meaning and environment variable as a comment above it.
func exampleConfig() string {
	var cfg Config
	fs := newFlagSet(&cfg, io.Discard)
	var b strings.Builder
	b.WriteString("# mtrelay sample configuration: every key with its default.\n" +
		"# Generated from the flags by go test ./cmd/mtrelay -run TestExampleConfig -update.\n" +
		"# Use: mtrelay --config /etc/mtrelay/mtrelay.yaml (or MTRELAY_CONFIG).\n" +
		"# Precedence: flag > env > file > default. Check a file with mtrelay check-config --config FILE.\n" +
		"# SIGHUP re-reads this file: log-level, access-log, max-conns and the TLS certificate\n" +
		"# files take effect at once; other changes are logged as needing a restart.\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == configFlag {
			return
		}
		v := f.DefValue
		if valueStyle(f) != 0 {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, "\n# %s (env %s)\n%s: %s\n", f.Usage, envName(f.Name), f.Name, v)
	})
	return b.String()
}

// TestExampleConfig keeps mtrelay.example.yaml equal to the flags in code, and checks
// that it loads and gives the defaults.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	want := exampleConfig()
	got, err := os.ReadFile(examplePath)
	if err != nil && !*update {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte(want)) {
		if !*update {
			t.Fatalf("mtrelay.example.yaml is out of date: run go test ./cmd/mtrelay -run TestExampleConfig -update")
		}
		if err := os.WriteFile(examplePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noEnv := func(string) string { return "" }
	fromFile, err := parseConfig([]string{"--config", examplePath}, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("example config does not load: %v", err)
	}
	defaults, err := parseConfig(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.ConfigFile = ""
	vals, defs := configValues(fromFile), configValues(defaults)
	for k, v := range defs {
		if vals[k] != v {
			t.Errorf("example config: %s is %q, want the default %q", k, vals[k], v)
		}
	}
}

// TestSystemdUnit checks that the sample unit reloads with SIGHUP and points at a
// config file.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile("../../mtrelay.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/mtrelay --config /etc/mtrelay/mtrelay.yaml", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("mtrelay.service lacks %q", want)
		}
	}
}
