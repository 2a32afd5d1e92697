package record

import (
	"fmt"
	"path"
	"strings"
)

// patterns says which streams are recorded without the publisher asking for it.
// Immutable once built; the Recorder swaps the whole value on SetPatterns.
type patterns struct {
	all  bool
	list []string // path.Match patterns over "app/stream"
}

// parsePatterns checks a --record setting: nothing or "none" (record only publishes
// of type record/append), "all", or app/stream patterns with path.Match globs
// ("live/*", "*/cam?"). "all" and "none" must stand alone. Entries are trimmed;
// empty ones are ignored.
func parsePatterns(list []string) (*patterns, error) {
	p := &patterns{}
	var special string
	n := 0
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n++
		switch s {
		case "all":
			p.all, special = true, s
			continue
		case "none":
			special = s
			continue
		}
		app, stream, ok := strings.Cut(s, "/")
		if !ok || app == "" || stream == "" || strings.Contains(stream, "/") {
			return nil, fmt.Errorf("record pattern %q: want all, none or app/stream (globs allowed, e.g. live/*)", s)
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("record pattern %q: %w", s, err)
		}
		p.list = append(p.list, s)
	}
	if special != "" && n > 1 {
		return nil, fmt.Errorf("record patterns %q: %s must stand alone", strings.Join(list, ","), special)
	}
	return p, nil
}

// match reports whether the stream key is recorded by these patterns.
func (p *patterns) match(key string) bool {
	if p.all {
		return true
	}
	for _, pat := range p.list {
		if ok, _ := path.Match(pat, key); ok {
			return true
		}
	}
	return false
}

// String returns the patterns as the --record flag writes them.
func (p *patterns) String() string {
	switch {
	case p.all:
		return "all"
	case len(p.list) == 0:
		return "none"
	}
	return strings.Join(p.list, ",")
}

// CheckPatterns returns the error New and SetPatterns give for list (see
// Config.Patterns), so that a configuration can be checked before it is used.
func CheckPatterns(list []string) error {
	_, err := parsePatterns(list)
	return err
}
