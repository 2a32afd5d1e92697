package rtmptest

import (
	"testing"

	"github.com/mtrelay/mtrelay/relay/relaytest"
)

// TestDeps enforces the package doc: rtmptest may use rtmp/chunk, go-rtmp's
// handshake and go-amf0, but not rtmp or relay, whose tests import it.
func TestDeps(t *testing.T) {
	for _, p := range relaytest.Deps(t, ".") {
		switch {
		case p == "github.com/mtrelay/mtrelay/rtmp/rtmptest", p == "github.com/mtrelay/mtrelay/rtmp/chunk", p == "github.com/mtrelay/mtrelay/rtmp/amf":
		case p == "github.com/yutopp/go-rtmp/handshake", p == "github.com/yutopp/go-amf0", p == "github.com/pkg/errors":
		default:
			t.Errorf("rtmp/rtmptest depends on %s", p)
		}
	}
}
