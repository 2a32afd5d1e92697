package rtmptest

import (
	"encoding/binary"
	"fmt"
)

// PlayStart is Play with start as play's start argument (RTMP 1.0 §7.2.2.1, in ms
// on the wire as Flash and ffmpeg send it): -2000 (live, else a recorded file),
// -1000 (live only) or a position in a recorded file.
func (c *Client) PlayStart(name string, start float64) error {
	sid, err := c.createStream()
	if err != nil {
		return err
	}
	c.streamID = sid
	// User Control Set Buffer Length (RTMP 1.0 §7.1.7): event 3, stream id, ms.
	ev := binary.BigEndian.AppendUint16(nil, 3)
	ev = binary.BigEndian.AppendUint32(ev, sid)
	ev = binary.BigEndian.AppendUint32(ev, 3000)
	if err := c.writeMessage(csidControl, typeUserControl, 0, 0, ev); err != nil {
		return err
	}
	c.txID++
	if err := c.command(csidStreamCmd, sid, "play", c.txID, nil, name, start); err != nil {
		return err
	}
	return c.awaitStatus("play "+name, c.txID, "NetStream.Play.Start")
}

// Seek sends seek(ms) (RTMP 1.0 §7.2.2.7) on the play stream and waits for onStatus
// NetStream.Seek.Notify. Media received before the notification is dropped, so the
// next ReadMedia returns what the server sent after it. A refusal (Seek.Failed,
// Seek.InvalidTime) is a *StatusError.
func (c *Client) Seek(ms float64) error {
	if c.streamID == 0 {
		return fmt.Errorf("rtmptest: seek: not playing")
	}
	c.txID++
	if err := c.command(csidStreamCmd, c.streamID, "seek", c.txID, nil, ms); err != nil {
		return err
	}
	err := c.await("seek", func(cmd *received) (bool, error) {
		if cmd.name != "onStatus" {
			return false, nil
		}
		se := cmd.statusError()
		switch se.Code {
		case "NetStream.Seek.Notify":
			return true, nil
		case "NetStream.Seek.Failed", "NetStream.Seek.InvalidTime":
			return false, se
		}
		if se.Level == "error" {
			return false, se
		}
		return false, nil
	})
	c.pending = c.pending[:0] // sent before the seek took effect
	return err
}

// Pause sends pause(pause, ms) (RTMP 1.0 §7.2.2.8) and waits for onStatus
// NetStream.Pause.Notify or NetStream.Unpause.Notify. Media received meanwhile is
// kept for ReadMedia.
func (c *Client) Pause(pause bool, ms float64) error {
	if c.streamID == 0 {
		return fmt.Errorf("rtmptest: pause: not playing")
	}
	c.txID++
	if err := c.command(csidStreamCmd, c.streamID, "pause", c.txID, nil, pause, ms); err != nil {
		return err
	}
	want := "NetStream.Unpause.Notify"
	if pause {
		want = "NetStream.Pause.Notify"
	}
	return c.awaitStatus("pause", c.txID, want)
}
