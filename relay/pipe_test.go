package relay_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/mtrelay/mtrelay/relay"
)

// TestPipe: frames keep their timestamps (no rebasing, no monotonic clamp), a full
// pipe says so instead of dropping, Flush empties it, End and Close end Read.
func TestPipe(t *testing.T) {
	t.Parallel()
	p := relay.NewPipe(relay.PipeOptions{MaxPackets: 3})
	sub := p.Subscriber()
	ts := []int64{5000, 5040, 4000} // a seek back is not clamped
	for _, v := range ts {
		if p.Full() {
			t.Fatal("full too early")
		}
		if err := p.Write(&relay.Packet{Kind: relay.KindVideo, Timestamp: v, Payload: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if !p.Full() || p.Len() != 3 {
		t.Fatalf("Full %v Len %d, want true 3", p.Full(), p.Len())
	}
	frames, err := sub.Read(t.Context(), make([]relay.Frame, 0, 8))
	if err != nil || len(frames) != 3 {
		t.Fatalf("Read: %d frames, %v", len(frames), err)
	}
	for i, f := range frames {
		if f.Timestamp != ts[i] {
			t.Errorf("frame %d at %d, want %d", i, f.Timestamp, ts[i])
		}
	}
	if p.Len() != 0 || p.Full() {
		t.Errorf("after Read: Len %d Full %v", p.Len(), p.Full())
	}
	p.Write(&relay.Packet{Kind: relay.KindAudio, Timestamp: 1})
	if n := p.Flush(); n != 1 || p.Len() != 0 {
		t.Errorf("Flush = %d, Len %d", n, p.Len())
	}
	// A blocked Read wakes on Write.
	done := make(chan error, 1)
	go func() {
		f, err := sub.Read(context.Background(), nil)
		if err == nil && (len(f) != 1 || f[0].Timestamp != 7) {
			err = errors.New("wrong frame")
		}
		done <- err
	}()
	p.Write(&relay.Packet{Kind: relay.KindAudio, Timestamp: 7})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.End(io.EOF)
	if _, err := sub.Read(t.Context(), nil); !errors.Is(err, io.EOF) {
		t.Errorf("Read after End: %v", err)
	}
	if err := p.Write(&relay.Packet{Kind: relay.KindAudio}); !errors.Is(err, io.EOF) {
		t.Errorf("Write after End: %v", err)
	}
	sub.Close()
	q := relay.NewPipe(relay.PipeOptions{})
	q.Subscriber().Close()
	if err := q.Write(&relay.Packet{Kind: relay.KindAudio}); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}
