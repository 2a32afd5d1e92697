// Package record records live streams to FLV files (FLV 10.1): every publish whose
// type is "record" or "append" (the RTMP publish command's second argument, RTMP 1.0
// §7.2.2.6), and every publish whose "app/stream" key matches the configured
// patterns (--record: all, none, or path.Match globs such as live/*).
//
// A recording is the file Dir/app/stream-YYYYMMDD-HHMMSS.flv, named after the UTC
// time the publish started ("-1", "-2"... for a second one in the same second). A
// publish of type append continues the newest file of its stream instead: its
// timestamps go on after the file's last media; a file that cannot be continued (not
// FLV, unreadable) is left alone and a new one is started, with a log line saying
// why.
//
// It owns:
//   - [Recorder], which listens to the hub's publishes ([relay.Hub.OnPublish]), lists
//     the recordings on disk ([Recorder.List]), counts ([Recorder.Stats]) and takes
//     new patterns on reload ([Recorder.SetPatterns]);
//   - the FLV file layout: header, an onMetaData tag whose duration and filesize are
//     fixed-size AMF0 numbers rewritten in place, then the tags; and the small AMF0
//     reader and writer (a subset: script data) it needs for that.
//
// # Files stay valid
//
// The header and onMetaData are written when the file is created; tags are then
// appended from a memory buffer at least once per Config.FlushInterval (1 s) and
// duration and filesize are rewritten after each write, so a crash loses at most
// the last second and leaves a file ffmpeg reads. On a clean stop (unpublish,
// relay shutdown) the file is flushed, its metadata fixed, synced and closed. A
// failed write is cut back to the last whole tag.
//
// # Never slowing the stream
//
// Each recording is a hub subscriber (protocol "record", counted as no viewer)
// drained at once by its own goroutine into the recording's own queue, bounded by
// Config.MaxQueueBytes (8 MiB); a writer goroutine empties that queue to the file.
// When the queue overflows (the disk does not keep up) or a write fails (disk
// full, I/O error, read-only file system) that recording stops with one log line
// (stream, file, reason) and the stream and its players go on untouched.
//
// record may import relay, httptunnel/flv, the standard library and zerolog; never
// rtmp or session. Goroutines: three per recording (drain, write, and events when
// Config.Events is set), all owned by the Recorder; Close waits for them.
package record
