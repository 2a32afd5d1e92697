package record_test

import (
	"strconv"
	"testing"

	"github.com/mtrelay/mtrelay/httptunnel/record"
)

// BenchmarkRecordFixture measures recording throughput: each iteration publishes the
// whole fixture (10 s, 0.87 MB, 683 packets) as fast as the hub takes it to a new
// stream of type record, and waits until its file is finished (flushed, metadata
// fixed, fsynced) in a temporary directory. Bytes are the fixture's payload bytes.
func BenchmarkRecordFixture(b *testing.B) {
	e := newEnv(b, record.Config{})
	pkts := fixture(b)
	var size int64
	for _, p := range pkts {
		size += int64(len(p.Payload))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.publishAll(b, "live/b"+strconv.Itoa(i), "record", pkts)
		e.waitIdle(b)
		i++
	}
}
