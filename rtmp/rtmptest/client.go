package rtmptest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yutopp/go-rtmp/handshake"

	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// DefaultTimeout is the initial client timeout (see Client.SetTimeout) and
// the handshake deadline of NewClient.
const DefaultTimeout = 10 * time.Second

// Message type IDs the client sends or looks at (RTMP 1.0 §5.4, §7.1).
const (
	typeAck              = 3
	typeUserControl      = 4
	typeWinAckSize       = 5
	typeSetPeerBandwidth = 6
	typeCommandAMF0      = 20
)

// Chunk stream ids, as ffmpeg uses them: protocol control on 2 (RTMP 1.0
// §5.4), NetConnection commands on 3, NetStream commands on 8, and one chunk
// stream per media type so audio and video messages interleave.
const (
	csidControl   = 2
	csidCommand   = 3
	csidAudio     = 4
	csidData      = 5
	csidVideo     = 6
	csidStreamCmd = 8
)

// mediaChunkSize is the chunk size WriteMedia announces, as OBS does.
const mediaChunkSize = 4096

// StatusError is a refusal from the server: an onStatus with level "error"
// or a code that ends what the call waited for, or an _error result. Match
// it with errors.AsType[*StatusError].
type StatusError struct {
	Command     string // "onStatus" or "_error"
	Level       string // "error" or "status"
	Code        string // e.g. "NetStream.Publish.BadName"
	Description string
}

// Error returns the command, level, code and description.
func (e *StatusError) Error() string {
	return fmt.Sprintf("rtmptest: %s %s %s: %s", e.Command, e.Level, e.Code, e.Description)
}

// Client is a minimal RTMP client for tests (see the package doc). A
// background goroutine reads messages from the server; it answers nothing
// by itself except Acknowledgements once the server's window (Window
// Acknowledgement Size) is reached, as ffmpeg does, and Set Chunk Size and
// Abort are applied by the chunk reader.
//
// The background reader stops reading the socket while 256 messages wait
// to be read, so a client that stops calling ReadMedia behaves like a slow
// player and pushes back on the server.
//
// Connect, Publish, Play and CloseStream must not run concurrently with any
// other method. Otherwise one goroutine may write (WriteMedia, WriteRaw,
// SetChunkSize) while another reads (ReadMessage, ReadMedia), and Close may
// be called at any time from anywhere.
type Client struct {
	timeout atomic.Int64 // time.Duration, see SetTimeout; 0 means DefaultTimeout

	conn net.Conn      // immutable after NewClient; closed by Close
	r    *chunk.Reader // owned by readLoop

	wmu       sync.Mutex // guards the fields below and every write to conn
	wbuf      []byte     // scratch for encoded chunks
	chunkSize uint32     // our outgoing chunk size
	sentSize  bool       // Set Chunk Size was sent

	msgs     chan *chunk.Message // sent to by readLoop, never closed
	readDone chan struct{}       // closed by readLoop when it returns
	readErr  error               // why readLoop returned; written before readDone is closed
	closing  chan struct{}       // closed by Close
	closed   sync.Once

	// Owned by the goroutine calling commands and reads.
	txID      float64
	streamID  uint32           // message stream id of Publish or Play, 0 before
	published string           // stream name given to Publish
	pending   []*chunk.Message // media received while a command waited
}

// Dial connects to addr over TCP and performs the RTMP handshake, both
// within ctx (its deadline and cancellation).
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rtmptest: dial: %w", err)
	}
	return newClient(ctx, conn)
}

// NewClient performs the RTMP handshake over conn, within DefaultTimeout,
// and returns a client that owns conn. conn must buffer writes the way a
// socket does (net.Pipe does not: go-rtmp writes C1 before reading S0).
func NewClient(conn net.Conn) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return newClient(ctx, conn)
}

// NewClientContext is NewClient with the handshake bounded by ctx instead of
// DefaultTimeout.
func NewClientContext(ctx context.Context, conn net.Conn) (*Client, error) {
	return newClient(ctx, conn)
}

func newClient(ctx context.Context, conn net.Conn) (*Client, error) {
	// Handshake (RTMP 1.0 §5.2) under the context's deadline; cancelling
	// the context expires the deadline, which unblocks the reads.
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(conn, 64<<10)
	err := handshake.HandshakeWithServer(br, conn, &handshake.Config{SkipHandshakeVerification: true})
	stop()
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rtmptest: handshake: %w (%w)", err, context.Cause(ctx))
		}
		return nil, fmt.Errorf("rtmptest: handshake: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})

	c := &Client{
		conn:      conn,
		r:         chunk.NewReader(br, chunk.ReaderConfig{}),
		chunkSize: chunk.DefaultChunkSize,
		msgs:      make(chan *chunk.Message, 256),
		readDone:  make(chan struct{}),
		closing:   make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// Close closes the connection without sending anything and waits for the
// background reader. It may be called more than once.
func (c *Client) Close() error {
	var err error
	c.closed.Do(func() {
		close(c.closing)
		err = c.conn.Close()
	})
	<-c.readDone
	return err
}

// readLoop reads messages into c.msgs until the connection fails, sending
// Acknowledgements (RTMP 1.0 §5.4.3) when the server's window is reached.
func (c *Client) readLoop() {
	defer close(c.readDone)
	var window uint32
	var acked uint64
	for {
		m, err := c.r.ReadMessage()
		if err != nil {
			c.readErr = fmt.Errorf("rtmptest: read: %w", err)
			return
		}
		if m.TypeID == typeWinAckSize && len(m.Payload) >= 4 {
			window = binary.BigEndian.Uint32(m.Payload)
		}
		if n := c.r.BytesRead(); window > 0 && n-acked >= uint64(window) {
			acked = n
			// A failed write shows up as a read error soon enough.
			_ = c.writeMessage(csidControl, typeAck, 0, 0, be32(uint32(n)))
		}
		select {
		case c.msgs <- m:
		case <-c.closing:
			c.readErr = fmt.Errorf("rtmptest: read: %w", net.ErrClosed)
			return
		}
	}
}

// SetTimeout sets how long each call that takes no context may block:
// Connect, Publish and Play wait at most d for the server's answer,
// ReadMessage for a message, and every write for the socket. d <= 0 means
// DefaultTimeout, the initial value.
func (c *Client) SetTimeout(d time.Duration) { c.timeout.Store(int64(d)) }

func (c *Client) timeoutOrDefault() time.Duration {
	if d := time.Duration(c.timeout.Load()); d > 0 {
		return d
	}
	return DefaultTimeout
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// writeMessage sends one message at the current chunk size.
func (c *Client) writeMessage(csid uint32, typeID uint8, streamID, ts uint32, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(csid, typeID, streamID, ts, payload)
}

func (c *Client) writeLocked(csid uint32, typeID uint8, streamID, ts uint32, payload []byte) error {
	if len(payload) > 0xFFFFFF {
		return fmt.Errorf("rtmptest: message of %d bytes too large for RTMP", len(payload))
	}
	c.wbuf = chunk.AppendMessage(c.wbuf[:0], c.chunkSize, csid, typeID, streamID, ts, payload)
	return c.writeRawLocked(c.wbuf)
}

func (c *Client) writeRawLocked(p []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeoutOrDefault()))
	if _, err := c.conn.Write(p); err != nil {
		return fmt.Errorf("rtmptest: write: %w", err)
	}
	return nil
}

// WriteRaw writes p to the connection as is, for tests of malformed or
// hand-made chunk streams. p must fit the chunk size the server expects.
func (c *Client) WriteRaw(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeRawLocked(p)
}

// SetChunkSize sends Set Chunk Size (RTMP 1.0 §5.4.1) and chunks every later
// message at size. WriteMedia calls it with 4096 unless it was called before.
func (c *Client) SetChunkSize(size uint32) error {
	if size == 0 || size > 0x7FFFFFFF {
		return fmt.Errorf("rtmptest: set chunk size %d: %w", size, chunk.ErrBadChunkSize)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.sentSize = true
	if err := c.writeLocked(csidControl, chunk.TypeSetChunkSize, 0, 0, be32(size)); err != nil {
		return err
	}
	c.chunkSize = size
	return nil
}

// command sends an AMF0 command message (RTMP 1.0 §7.1.1).
func (c *Client) command(csid, streamID uint32, name string, txID float64, args ...any) error {
	p, err := EncodeAMF0(append([]any{name, txID}, args...)...)
	if err != nil {
		return err
	}
	if err := c.writeMessage(csid, typeCommandAMF0, streamID, 0, p); err != nil {
		return fmt.Errorf("rtmptest: send %s: %w", name, err)
	}
	return nil
}

// received is a decoded AMF0 command from the server.
type received struct {
	name     string
	txID     float64
	args     []any // after the transaction id: command object, then arguments
	streamID uint32
}

// info returns the information object of an onStatus or _result/_error,
// which is the second argument (after the command object).
func (r *received) info() map[string]any {
	if len(r.args) < 2 {
		return nil
	}
	m, _ := r.args[1].(map[string]any)
	return m
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func (r *received) statusError() *StatusError {
	info := r.info()
	return &StatusError{Command: r.name, Level: str(info, "level"), Code: str(info, "code"), Description: str(info, "description")}
}

// next returns the next message from the server, pending media first.
func (c *Client) next(ctx context.Context) (*chunk.Message, error) {
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m, nil
	}
	return c.receive(ctx)
}

// receive returns the next message read by readLoop.
func (c *Client) receive(ctx context.Context) (*chunk.Message, error) {
	select {
	case m := <-c.msgs:
		return m, nil
	default:
	}
	select {
	case m := <-c.msgs:
		return m, nil
	case <-c.readDone:
		select {
		case m := <-c.msgs: // sent before readLoop ended
			return m, nil
		default:
		}
		return nil, c.readErr
	case <-ctx.Done():
		return nil, fmt.Errorf("rtmptest: read: %w", context.Cause(ctx))
	}
}

// await reads messages until match returns done or an error, within the
// client timeout. Media messages read meanwhile are kept for ReadMessage
// and ReadMedia; a Set Peer Bandwidth is answered with a Window Acknowledgement
// Size of the same value, as librtmp and OBS do; other messages are dropped.
func (c *Client) await(what string, match func(cmd *received) (bool, error)) error {
	ctx, cancel := context.WithTimeoutCause(context.Background(), c.timeoutOrDefault(),
		fmt.Errorf("rtmptest: no answer to %s within %v", what, c.timeoutOrDefault()))
	defer cancel()
	for {
		m, err := c.receive(ctx)
		if err != nil {
			return fmt.Errorf("rtmptest: wait for %s: %w", what, err)
		}
		switch m.TypeID {
		case TypeAudio, TypeVideo, TypeData:
			c.pending = append(c.pending, m)
		case typeSetPeerBandwidth:
			if len(m.Payload) >= 4 {
				if err := c.writeMessage(csidControl, typeWinAckSize, 0, 0, m.Payload[:4]); err != nil {
					return err
				}
			}
		case typeCommandAMF0:
			cmd, err := decodeCommand(m)
			if err != nil {
				return fmt.Errorf("rtmptest: wait for %s: %w", what, err)
			}
			done, err := match(cmd)
			if err != nil {
				return fmt.Errorf("rtmptest: %s: %w", what, err)
			}
			if done {
				return nil
			}
		}
	}
}

// decodeCommand decodes a command message (RTMP 1.0 §7.1.1): name,
// transaction id, then arguments. The transaction id may be missing, as in
// ffmpeg's onFCPublish; it is then 0.
func decodeCommand(m *chunk.Message) (*received, error) {
	v, err := DecodeAMF0(m.Payload)
	if err != nil {
		return nil, err
	}
	cmd := &received{streamID: m.StreamID}
	var ok bool
	if len(v) > 0 {
		cmd.name, ok = v[0].(string)
	}
	if !ok {
		return nil, fmt.Errorf("rtmptest: command without a name: %w", ErrBadAMF)
	}
	if len(v) > 1 {
		cmd.txID, _ = v[1].(float64)
		cmd.args = v[2:]
	}
	return cmd, nil
}

// awaitResult waits for the _result of transaction txID; an _error for it
// is returned as a *StatusError.
func (c *Client) awaitResult(what string, txID float64) (*received, error) {
	var res *received
	err := c.await(what, func(cmd *received) (bool, error) {
		if cmd.txID != txID {
			return false, nil
		}
		switch cmd.name {
		case "_result":
			res = cmd
			return true, nil
		case "_error":
			return false, cmd.statusError()
		}
		return false, nil
	})
	return res, err
}

// Connect sends connect (RTMP 1.0 §7.2.1.1) for app with tcURL (e.g.
// "rtmp://127.0.0.1:1935/live") and waits for its _result with code
// NetConnection.Connect.Success. A refusal is a *StatusError.
func (c *Client) Connect(app string, tcURL string) error {
	c.txID++
	obj := map[string]any{
		"app":            app,
		"type":           "nonprivate",
		"flashVer":       "FMLE/3.0 (compatible; mtrelay rtmptest)",
		"tcUrl":          tcURL,
		"fpad":           false,
		"capabilities":   15.0,
		"audioCodecs":    4071.0,
		"videoCodecs":    252.0,
		"videoFunction":  1.0,
		"objectEncoding": 0.0,
	}
	if err := c.command(csidCommand, 0, "connect", c.txID, obj); err != nil {
		return err
	}
	res, err := c.awaitResult("connect", c.txID)
	if err != nil {
		return err
	}
	if se := res.statusError(); se.Code != "NetConnection.Connect.Success" {
		return fmt.Errorf("rtmptest: connect: %w", se)
	}
	return nil
}

// createStream sends createStream (RTMP 1.0 §7.2.1.3) and returns the
// message stream id of its _result.
func (c *Client) createStream() (uint32, error) {
	c.txID++
	if err := c.command(csidCommand, 0, "createStream", c.txID, nil); err != nil {
		return 0, err
	}
	res, err := c.awaitResult("createStream", c.txID)
	if err != nil {
		return 0, err
	}
	if len(res.args) < 2 {
		return 0, fmt.Errorf("rtmptest: createStream result without stream id: %w", ErrBadAMF)
	}
	id, ok := res.args[1].(float64)
	if !ok || id < 1 || id > 0xFFFFFFFF {
		return 0, fmt.Errorf("rtmptest: createStream result stream id %v: %w", res.args[1], ErrBadAMF)
	}
	return uint32(id), nil
}

// awaitStatus waits for an onStatus whose code is want. An onStatus with
// level "error", or an _error for txID, is returned as a *StatusError; other
// onStatus messages are skipped.
func (c *Client) awaitStatus(what string, txID float64, want string) error {
	return c.await(what, func(cmd *received) (bool, error) {
		switch {
		case cmd.name == "onStatus":
			se := cmd.statusError()
			if se.Code == want {
				return true, nil
			}
			if se.Level == "error" {
				return false, se
			}
		case cmd.name == "_error" && cmd.txID == txID:
			return false, cmd.statusError()
		}
		return false, nil
	})
}

// Publish sends releaseStream, FCPublish, createStream and publish(name,
// "live") (RTMP 1.0 §7.2.2.6) the way OBS and ffmpeg do, and waits for
// onStatus NetStream.Publish.Start. A refusal is a *StatusError carrying the
// code, e.g. NetStream.Publish.BadName.
func (c *Client) Publish(name string) error { return c.PublishType(name, "live") }

// PublishType is Publish with another publishing type as the publish command's
// second argument: "record" or "append" ask the server to record the stream.
func (c *Client) PublishType(name, typ string) error {
	c.txID++
	if err := c.command(csidCommand, 0, "releaseStream", c.txID, nil, name); err != nil {
		return err
	}
	c.txID++
	if err := c.command(csidCommand, 0, "FCPublish", c.txID, nil, name); err != nil {
		return err
	}
	sid, err := c.createStream()
	if err != nil {
		return err
	}
	c.streamID = sid
	c.published = name
	c.txID++
	if err := c.command(csidStreamCmd, sid, "publish", c.txID, nil, name, typ); err != nil {
		return err
	}
	return c.awaitStatus("publish "+name, c.txID, "NetStream.Publish.Start")
}

// Play sends createStream, Set Buffer Length (3 s) and play(name, -2000)
// (RTMP 1.0 §7.2.2.1) as ffmpeg does, and waits for onStatus
// NetStream.Play.Start. A refusal is a *StatusError.
func (c *Client) Play(name string) error { return c.PlayStart(name, -2000) }

// CloseStream ends a publish or play the way OBS and ffmpeg do: FCUnpublish
// (after Publish) and deleteStream (RTMP 1.0 §7.2.2.3). It waits for no answer.
func (c *Client) CloseStream() error {
	if c.streamID == 0 {
		return errors.New("rtmptest: close stream: no stream")
	}
	if c.published != "" {
		c.txID++
		if err := c.command(csidCommand, 0, "FCUnpublish", c.txID, nil, c.published); err != nil {
			return err
		}
	}
	c.txID++
	if err := c.command(csidCommand, 0, "deleteStream", c.txID, nil, float64(c.streamID)); err != nil {
		return err
	}
	c.streamID, c.published = 0, ""
	return nil
}

// WriteMedia sends one audio (8), video (9) or data (18) message on the
// publish stream, each type on its own chunk stream. Before the first one it
// sends Set Chunk Size 4096, like OBS, unless SetChunkSize was called. A
// data message is sent as is: for metadata pass
// EncodeAMF0("@setDataFrame", "onMetaData", ECMAArray{...}), as ffmpeg does.
func (c *Client) WriteMedia(typeID uint8, timestamp uint32, payload []byte) error {
	if c.published == "" {
		return errors.New("rtmptest: write media: not publishing")
	}
	var csid uint32
	switch typeID {
	case TypeAudio:
		csid = csidAudio
	case TypeVideo:
		csid = csidVideo
	case TypeData:
		csid = csidData
	default:
		return fmt.Errorf("rtmptest: write media: type %d is not audio, video or data", typeID)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.sentSize {
		c.sentSize = true
		if err := c.writeLocked(csidControl, chunk.TypeSetChunkSize, 0, 0, be32(mediaChunkSize)); err != nil {
			return err
		}
		c.chunkSize = mediaChunkSize
	}
	return c.writeLocked(csid, typeID, c.streamID, timestamp, payload)
}

// ReadMessage returns the next message from the server, of any type, within
// the client timeout (SetTimeout). Commands and control messages consumed
// by Connect, Publish and Play are not returned again; media received
// meanwhile is.
func (c *Client) ReadMessage() (*chunk.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeoutOrDefault())
	defer cancel()
	return c.next(ctx)
}

// ReadMedia returns the next audio, video or data message, skipping control
// and command messages, until ctx ends. It returns a *StatusError, and the
// client stays usable, when the server sends an onStatus with level "error"
// or one of NetStream.Play.UnpublishNotify, NetStream.Play.Stop and
// NetStream.Play.Complete; other onStatus codes (Play.Reset, Play.Start,
// Play.PublishNotify) are skipped. When ctx ends the client also stays
// usable: the message being read is not lost.
func (c *Client) ReadMedia(ctx context.Context) (*chunk.Message, error) {
	for {
		m, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		switch m.TypeID {
		case TypeAudio, TypeVideo, TypeData:
			return m, nil
		case typeCommandAMF0:
			cmd, err := decodeCommand(m)
			if err != nil || cmd.name != "onStatus" {
				continue
			}
			se := cmd.statusError()
			switch se.Code {
			case "NetStream.Play.UnpublishNotify", "NetStream.Play.Stop", "NetStream.Play.Complete":
				return nil, se
			}
			if se.Level == "error" {
				return nil, se
			}
		}
	}
}
