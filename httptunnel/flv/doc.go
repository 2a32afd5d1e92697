// Package flv writes and reads the FLV container (FLV 10.1, Adobe, 2010) for
// HTTP-FLV playback, and parses the codec records that FLV tag bodies carry.
//
// It owns:
//   - the FLV file header and tag framing: [Header], [PutTagHeader], and [Batch],
//     which gathers a batch of tags as a net.Buffers (writev) so that the payload of a
//     tag, shared by every viewer, is never copied: each viewer only builds its own
//     11-byte tag headers and 4-byte PreviousTagSize trailers;
//   - [Reader], an FLV stream reader (used by tests and tools to check HTTP-FLV output);
//   - parsers for tag bodies: [ParseVideo] (VIDEODATA, Annex E.4.3.1), [ParseAudio]
//     (AUDIODATA, E.4.2.1), [ParseAVCConfig] (AVCDecoderConfigurationRecord,
//     ISO/IEC 14496-15 §5.2.4.1) and [SplitAVCC] (length-prefixed NAL units);
//   - [CheckCodecs] (and [CheckVideo], [CheckAudio]), the one check of every browser
//     path that a stream is H.264 and AAC, failing with a [*CodecError].
//
// Every parser takes []byte or io.Reader, bounds every length read from the input, and
// is fuzzed with a round trip. flv imports only the standard library: it knows nothing
// of the relay hub, HTTP or RTMP.
package flv
