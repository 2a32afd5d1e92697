package relay

import (
	"sync"
	"sync/atomic"
	"testing"
)

var testEncoding = NewEncoding()

// TestEncodedSharedAcrossGoroutines checks that concurrent callers get one shared result.
func TestEncodedSharedAcrossGoroutines(t *testing.T) {
	p := &Packet{Kind: KindVideo, Payload: []byte{1, 2, 3}}
	var builds atomic.Int32
	build := func(p *Packet) []byte {
		builds.Add(1)
		return append([]byte{0xFF}, p.Payload...)
	}
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for i := range results {
		wg.Go(func() { results[i] = p.Encoded(testEncoding, build) })
	}
	wg.Wait()
	for _, r := range results {
		if &r[0] != &results[0][0] {
			t.Fatal("callers got different encodings")
		}
	}
	if p.Encoded(testEncoding, build); builds.Load() > int32(len(results)) {
		t.Fatalf("%d builds", builds.Load())
	}
	other := &Packet{Kind: KindVideo, Payload: []byte{9}}
	if got := other.Encoded(testEncoding, build); got[1] != 9 {
		t.Fatal("encoding leaked between packets")
	}
}
