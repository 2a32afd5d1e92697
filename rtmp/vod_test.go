package rtmp

import (
	"math"
	"testing"
)

func TestVODKeyName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"fixture", "fixture"},
		{"fixture.flv", "fixture"},
		{"flv:fixture", "fixture"},
		{"flv:fixture.FLV?key=1", "fixture?key=1"},
		{".flv", ".flv"},
		{"flv:", ""},
	} {
		if got := vodKeyName(c.in); got != c.want {
			t.Errorf("vodKeyName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestPlayStart is the table of play's start argument: what is live only, what
// names a position in a file, the rest is "live if live, else the file".
func TestPlayStart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		start          float64
		liveOnly, file bool
	}{
		{math.NaN(), false, false}, // absent
		{-2000, false, false},
		{-2, false, false},
		{-1000, true, false},
		{-1, true, false},
		{0, false, true},
		{6000, false, true},
		{math.Inf(1), false, false},
		{math.Inf(-1), false, false},
	} {
		if got := playLiveOnly(c.start); got != c.liveOnly {
			t.Errorf("playLiveOnly(%v) = %v", c.start, got)
		}
		if got := playFromFile(c.start); got != c.file {
			t.Errorf("playFromFile(%v) = %v", c.start, got)
		}
	}
}
