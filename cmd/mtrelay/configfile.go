package main

// The YAML config file (--config), check-config and version.
//
// A config file is one YAML mapping whose keys are flag names (rtmp-addr, not
// rtmp_addr or RTMPAddr) and whose values are scalars written as on the command line
// ("10s", 4096, true). It sits between env and the defaults: flag > env > file >
// default. go.yaml.in/yaml/v3 decodes it into a yaml.Node tree, which keeps line
// numbers, so an unknown key, a repeated key or a bad value is reported at its line.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"runtime/debug"
	"strings"

	"go.yaml.in/yaml/v3"
)

// configFlag is the flag (and env MTRELAY_CONFIG) that names the config file; it is
// the one flag a config file cannot set.
const configFlag = "config"

// fileValue is one key of a config file.
type fileValue struct {
	value string
	line  int
}

// readConfigFile parses the YAML file at path into flag name → value, checking every
// key against fs: unknown, repeated or non-scalar keys are errors with their line.
func readConfigFile(path string, fs *flag.FlagSet) (map[string]fileValue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return parseConfigFile(path, data, fs)
}

func parseConfigFile(path string, data []byte, fs *flag.FlagSet) (map[string]fileValue, error) {
	errAt := func(line int, format string, args ...any) error {
		return fmt.Errorf("config file %s line %d: %s", path, line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]fileValue{}, nil // empty file: nothing set
		}
		return nil, fmt.Errorf("config file %s: %w", path, err) // yaml's message has the line
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, errAt(extra.Line, "a second YAML document; want one mapping")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return map[string]fileValue{}, nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return nil, errAt(root.Line, "want a mapping of flag names to values")
	}
	out := make(map[string]fileValue, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k.Line, "want a flag name as key")
		}
		if fs.Lookup(name) == nil || name == configFlag {
			msg := fmt.Sprintf("unknown key %q", name)
			if alt := strings.ReplaceAll(strings.ToLower(name), "_", "-"); alt != name && fs.Lookup(alt) != nil {
				msg += fmt.Sprintf(" (did you mean %s?)", alt)
			} else if name == configFlag {
				msg += " (a config file cannot name another)"
			}
			return nil, errAt(k.Line, "%s", msg)
		}
		if prev, ok := out[name]; ok {
			return nil, errAt(k.Line, "key %q repeated (first on line %d)", name, prev.line)
		}
		var val string
		switch {
		case v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Kind == yaml.ScalarNode:
			val = v.Alias.Value
		case v.Kind != yaml.ScalarNode:
			return nil, errAt(v.Line, "%s: want a single value, as on the command line", name)
		case v.Tag != "!!null":
			val = v.Value
		}
		out[name] = fileValue{value: val, line: v.Line}
	}
	return out, nil
}

// configFilePath is the config file named by --config, else by MTRELAY_CONFIG.
func configFilePath(fs *flag.FlagSet, set map[string]bool, getenv func(string) string) string {
	if set[configFlag] {
		return fs.Lookup(configFlag).Value.String()
	}
	return getenv(envName(configFlag))
}

// applyConfigFile sets, from the config file (if one is named), every flag that
// neither the command line (set) nor the environment sets. Every value in the file is
// checked, including those overridden.
func applyConfigFile(fs *flag.FlagSet, set map[string]bool, getenv func(string) string) error {
	path := configFilePath(fs, set, getenv)
	if path == "" {
		return nil
	}
	vals, err := readConfigFile(path, fs)
	if err != nil {
		return err
	}
	var scratch Config
	check := newFlagSet(&scratch, io.Discard)
	for name, fv := range vals {
		f := fs.Lookup(name)
		if set[name] || getenv(envName(name)) != "" {
			f = check.Lookup(name) // overridden: only check the value
		}
		if err := f.Value.Set(fv.value); err != nil {
			return fmt.Errorf("config file %s line %d: %s: %q: %w", path, fv.line, name, fv.value, err)
		}
	}
	return nil
}

// checkConfigMain is `mtrelay check-config [flags]`: it validates the configuration
// that flags, env and the config file give and prints it to out as a YAML config
// file, each value commented with where it came from, secrets masked.
func checkConfigMain(args []string, getenv func(string) string, out, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mtrelay check-config: %v\n", err)
		return 2
	}
	// Which layer each value came from; parseConfig has already checked all of this.
	var scratch Config
	fs := newFlagSet(&scratch, io.Discard)
	_ = fs.Parse(args)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var file map[string]fileValue
	if path := configFilePath(fs, set, getenv); path != "" {
		file, _ = readConfigFile(path, fs)
	}

	var eff Config
	effective := newFlagSet(&eff, io.Discard) // sets eff to the defaults, so:
	eff = cfg                                 // its flags now read the effective values
	m := &yaml.Node{Kind: yaml.MappingNode}
	effective.VisitAll(func(f *flag.Flag) {
		source := "default"
		switch _, inFile := file[f.Name]; {
		case set[f.Name]:
			source = "flag"
		case getenv(envName(f.Name)) != "":
			source = "env " + envName(f.Name)
		case inFile:
			source = "file"
		}
		v := maskSetting(f.Name, f.Value.String()) // hooks.go
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: f.Name},
			&yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: valueStyle(f), LineComment: source})
	})
	fmt.Fprintln(out, "# mtrelay effective configuration (check-config): valid")
	enc := yaml.NewEncoder(out)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		fmt.Fprintf(stderr, "mtrelay check-config: %v\n", err)
		return 1
	}
	enc.Close()
	return 0
}

// valueStyle quotes string values, so that "" and ":1935" read back as strings.
func valueStyle(f *flag.Flag) yaml.Style {
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isString := g.Get().(string); isString {
			return yaml.DoubleQuotedStyle
		}
	}
	return 0
}

// dsnPassword matches a password in a key=value connection string.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// maskDatabaseURL hides the password of a PostgreSQL URL or key=value DSN.
func maskDatabaseURL(s string) string {
	if s == "" {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}

// versionMain is `mtrelay version`: the module version, the VCS revision when the
// binary was built with it, and the Go toolchain, from the build info.
func versionMain(out io.Writer) int {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(out, "mtrelay (no build info)")
		return 0
	}
	fmt.Fprintf(out, "mtrelay %s %s\n", bi.Main.Version, bi.GoVersion)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
			fmt.Fprintf(out, "%s=%s\n", s.Key, s.Value)
		}
	}
	return 0
}
