package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config file into the test's temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mtrelay.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// envMap is a getenv backed by a map.
func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestConfigFilePrecedence sets keys in a file, some of them also in env and on the
// command line: flag > env > file > default.
func TestConfigFilePrecedence(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `# a relay
rtmp-addr: ":1999"      # file only
log-level: debug        # env wins
slow-grace: 3s          # flag wins
queue-packets: 64
metrics-per-stream: true
tls-cert: ~
`)
	for _, viaEnv := range []bool{false, true} {
		args := []string{"--slow-grace", "5s"}
		env := map[string]string{"MTRELAY_LOG_LEVEL": "warn"}
		if viaEnv {
			env["MTRELAY_CONFIG"] = path
		} else {
			args = append(args, "--config", path)
		}
		cfg, err := parseConfig(args, envMap(env), io.Discard)
		if err != nil {
			t.Fatalf("config via env %v: %v", viaEnv, err)
		}
		if cfg.RTMPAddr != ":1999" || cfg.LogLevel != "warn" || cfg.SlowGrace != 5*time.Second ||
			cfg.QueuePackets != 64 || !cfg.MetricsPerStream || cfg.HTTPAddr != ":8080" || cfg.TLSCert != "" {
			t.Errorf("config via env %v: rtmp-addr %q log-level %q slow-grace %v queue-packets %d metrics-per-stream %v http-addr %q; "+
				`want ":1999" (file), "warn" (env), 5s (flag), 64, true (file), ":8080" (default)`,
				viaEnv, cfg.RTMPAddr, cfg.LogLevel, cfg.SlowGrace, cfg.QueuePackets, cfg.MetricsPerStream, cfg.HTTPAddr)
		}
	}
}

// TestConfigFileErrors checks that a bad file is refused with the line at fault.
func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"unknown key", "rtmp-addr: \":1\"\n\nrtmp_adr: x\n", []string{"line 3", `unknown key "rtmp_adr"`}},
		{"underscore hint", "log_level: debug\n", []string{"line 1", "did you mean log-level?"}},
		{"repeated key", "max-conns: 1\nmax-conns: 2\n", []string{"line 2", "repeated (first on line 1)"}},
		{"bad value", "# c\nqueue-packets: many\n", []string{"line 2", "queue-packets"}},
		{"bad duration", "idle-timeout: 5 minutes\n", []string{"line 1", "idle-timeout"}},
		{"list value", "rtmp-addr:\n  - a\n  - b\n", []string{"line 2", "want a single value"}},
		{"config key", "config: other.yaml\n", []string{"line 1", `unknown key "config"`}},
		{"not a mapping", "- rtmp-addr\n", []string{"line 1", "want a mapping"}},
		{"yaml syntax", "rtmp-addr: [\n", []string{"line"}},
		{"invalid after merge", "log-level: loud\n", []string{"--log-level"}},
		{"bad value overridden by a flag", "slow-grace: soon\n", []string{"line 1", "slow-grace"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tc.text)
			_, err := parseConfig([]string{"--config", path, "--slow-grace", "1s"}, envMap(nil), io.Discard)
			if err == nil {
				t.Fatalf("no error for %q", tc.text)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := parseConfig([]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, envMap(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "none.yaml") {
			t.Errorf("missing file: %v", err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		t.Parallel()
		for _, text := range []string{"", "# only a comment\n"} {
			if _, err := parseConfig([]string{"--config", writeConfig(t, text)}, envMap(nil), io.Discard); err != nil {
				t.Errorf("%q: %v", text, err)
			}
		}
	})
}

// TestCheckConfig prints the effective config with where each value came from, the
// database password masked, and reads back as the same config.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, url, secret string }{
		{"url", "postgres://mtrelay_service:s3cr3t-pw@db:5432/mtrelay?sslmode=disable", "s3cr3t-pw"},
		{"url query", "postgres://db/mtrelay?user=svc&password=s3cr3t-pw", "s3cr3t-pw"},
		{"dsn", "host=db user=svc password=s3cr3t-pw dbname=mtrelay", "s3cr3t-pw"},
		{"dsn quoted", "host=db password='s3cr3t pw' dbname=mtrelay", "s3cr3t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, "database-url: \""+tc.url+"\"\nrtmp-addr: \":1999\"\n")
			var out, stderr bytes.Buffer
			code := checkConfigMain([]string{"--config", path, "--max-conns", "7"},
				envMap(map[string]string{"MTRELAY_LOG_LEVEL": "warn"}), &out, &stderr)
			if code != 0 {
				t.Fatalf("check-config exit %d: %s", code, stderr.String())
			}
			text := out.String()
			if strings.Contains(text, tc.secret) {
				t.Errorf("the password is printed:\n%s", text)
			}
			for _, want := range []string{"xxxxx", `rtmp-addr: ":1999" # file`, "max-conns: 7 # flag",
				`log-level: "warn" # env MTRELAY_LOG_LEVEL`, `http-addr: ":8080" # default`} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			// The output is itself a valid config file (once the config key is dropped).
			var lines []string
			for _, l := range strings.Split(text, "\n") {
				if !strings.HasPrefix(l, "config:") {
					lines = append(lines, l)
				}
			}
			cfg, err := parseConfig([]string{"--config", writeConfig(t, strings.Join(lines, "\n"))}, envMap(nil), io.Discard)
			if err != nil {
				t.Fatalf("check-config output does not read back: %v", err)
			}
			if cfg.MaxConns != 7 || cfg.RTMPAddr != ":1999" || cfg.LogLevel != "warn" {
				t.Errorf("read back: max-conns %d rtmp-addr %q log-level %q", cfg.MaxConns, cfg.RTMPAddr, cfg.LogLevel)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		var out, stderr bytes.Buffer
		path := writeConfig(t, "a: 1\nb: 2\nbogus-key: 3\n")
		if code := checkConfigMain([]string{"--config", path}, envMap(nil), &out, &stderr); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr.String(), "line 1") || out.Len() != 0 {
			t.Errorf("stderr %q, stdout %q", stderr.String(), out.String())
		}
	})
}

// TestVersion prints the module version and the Go toolchain.
func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := versionMain(&out); code != 0 || !strings.HasPrefix(out.String(), "mtrelay ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
}
