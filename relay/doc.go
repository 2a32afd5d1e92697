// Package relay is the protocol-neutral core of mtrelay: it maps stream keys
// ("app/stream") to live streams and fans each stream's packets out from one
// publisher to any number of subscribers.
//
// The package owns:
//   - [Hub], the map from stream key to stream, and its lifecycle;
//   - [Packet], the immutable unit of media shared by pointer between subscribers;
//   - the GOP cache, the stored metadata and sequence headers that give a new
//     subscriber an instant start;
//   - the bounded per-subscriber queues, their drop policy and the eviction of
//     slow subscribers;
//   - the per-stream and per-subscriber counters ([StreamStats], [SubscriberStats]).
//
// relay knows no wire format. It must not import RTMP, AMF, FLV, HLS or any other
// protocol package (nor any other mtrelay package): it may import only the
// standard library and github.com/rs/zerolog. A test enforces this. The protocol
// packages translate their messages to and from [Packet].
//
// # Concurrency
//
// Lock order: Hub.mu, then stream.mu, then Subscriber.mu. The publish path
// ([Publisher.WritePacket]) takes only its stream's read lock and, one at a time,
// each subscriber's mutex; it never blocks on a subscriber and never takes the hub
// lock while the stream lock is held. SubscribeOptions.WriteThrough callbacks owed by
// WritePacket are made after the stream lock is released, from the publishing
// goroutine (WritePacket, Flush or Close); Hub.Kick, which closes a publisher from
// another goroutine, leaves them and wakes the subscribers' readers instead. The
// package starts no goroutines: time-based
// checks (SlowGrace, PlayWait) are made lazily when a packet is pushed or read.
package relay
