package record

// SetWriteHook makes every writer of r call fn before it writes a batch of frames.
// Set it before the first publish.
func SetWriteHook(r *Recorder, fn func()) { r.writeHook = fn }
