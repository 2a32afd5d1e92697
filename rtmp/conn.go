package rtmp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/netio"
	"github.com/mtrelay/mtrelay/rtmp/amf"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// Chunk stream ids of what the server sends. Every message is written whole with a
// type 0 first chunk, so the choice only mirrors common practice (ffmpeg, nginx-rtmp).
const (
	csidControl = 2
	csidCommand = 3
	csidAudio   = 4
	csidData    = 5
	csidVideo   = 6
)

// maxStreamsPerConn caps createStream per connection.
const maxStreamsPerConn = 16

// conn is one RTMP connection. Its run goroutine is the only reader. Once the
// handshake is done, nc is written by its writer goroutine and, for a plain TCP
// player, by the publisher's goroutine through the writer (writer.writeThrough), one
// at a time under the writer's wmu.
type conn struct {
	srv      *Server  // immutable
	nc       net.Conn // immutable; closed by run's exit, Server.Close, eviction, writer errors
	id       uint64   // immutable
	remote   string   // immutable
	protocol string   // immutable: rtmp, rtmps, rtmpt, rtmpts
	log      zerolog.Logger
	start    time.Time
	w        *writer     // immutable after handshake
	raw      *netio.Conn // immutable; raw-syscall I/O on plain TCP (Linux), else nil
	// evicted is the hub's reason for cutting off a slow player, set by OnEvict before
	// it closes nc; run logs it instead of the read or write error that follows.
	evicted atomic.Pointer[error]
	kicked  atomic.Bool // set by relay.Hub.Kick before it closes nc

	// Set by run before it reads; used by whichever goroutine serves the connection.
	cfg       *Config            // the configuration as of the connection's start
	ctx       context.Context    // the connection's context
	cancel    context.CancelFunc // cancels ctx
	stopClose func() bool        // stops the AfterFunc that closes the connection with ctx
	poller    *netio.Poller      // immutable: where a waiting player parks, or nil
	leave     func()             // immutable: what resume calls after ending the connection, or nil

	// Owned by the goroutine serving the connection: run, then each resume in turn.
	subEnd     string    // why a play ends when the connection does (relay.End*), set by run
	br         io.Reader // buffered: raw (relay/netio), or a bufio.Reader
	cr         *chunk.Reader
	app        string
	tcURL      string
	connected  bool
	nextSID    uint32
	streams    map[uint32]*netStream
	peerWindow uint32 // ack window asked by the peer
	backlogged bool   // a reply could not be queued: close
	lastKey    string // the last stream published or played, for the close log
	lastAck    uint64
	scratch    []byte
	queued     int64 // bytes handed to the writer by send (flushReplies)
}

// netStream is one message stream made by createStream. Owned by conn.run.
type netStream struct {
	id     uint32
	pub    *relay.Publisher
	key    string
	since  time.Time
	bytes  int64
	ts     tsUnwrapper
	play   bool
	haveTS bool
	vod    *vodPlay // a recorded file being played (vod.go), else nil
}

// tsUnwrapper turns 32-bit RTMP timestamps into a 64-bit clock. Deltas are taken as
// signed 32-bit so audio and video arriving slightly out of order do not jump 49 days.
type tsUnwrapper struct {
	started bool
	last    uint32
	ext     int64
}

func (u *tsUnwrapper) unwrap(ts uint32) int64 {
	if !u.started {
		u.started, u.last, u.ext = true, ts, int64(ts)
		return u.ext
	}
	u.ext += int64(int32(ts - u.last))
	u.last = ts
	return u.ext
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		id:         s.nextID.Add(1),
		remote:     nc.RemoteAddr().String(),
		protocol:   protocolOf(nc),
		start:      time.Now(),
		streams:    make(map[uint32]*netStream),
		peerWindow: 2500000,
		raw:        netio.New(nc),
	}
	c.log = s.log.With().Uint64("conn", c.id).Str("remote", c.remote).Str("protocol", c.protocol).Logger()
	if c.raw != nil {
		c.raw.OnDrain = c.flushPublished
	}
	return c
}

// flushPublished sends what this connection published to the players the relay left
// it for (relay.Publisher.Flush). Called by run when its input runs dry.
func (c *conn) flushPublished() {
	hold := c.srv.cfg.WriteCoalesce
	for _, ns := range c.streams {
		switch {
		case ns.pub == nil:
		case hold > 0:
			ns.pub.FlushHoldingAudio(hold) // --write-coalesce
		default:
			ns.pub.Flush()
		}
	}
}

func protocolOf(nc net.Conn) string {
	if p, ok := nc.(interface{ Protocol() string }); ok {
		return p.Protocol()
	}
	if _, ok := nc.(*tls.Conn); ok {
		return "rtmps"
	}
	return "rtmp"
}

// run serves the connection and, unless it parked (see park), logs one line when it
// ends. It reports whether the connection parked: it has not ended then, and the
// goroutine that resumes it ends it (resume).
func (c *conn) run(ctx context.Context) (parked bool) {
	c.ctx, c.cancel = context.WithCancel(ctx)
	ctx = c.ctx
	c.stopClose = context.AfterFunc(ctx, c.close)
	err := c.serve(ctx)
	if err == errParked {
		return true
	}
	c.end(err)
	return false
}

// resume goes on serving a parked connection whose peer sent something (or hung up,
// or the connection was closed meanwhile). It runs on a goroutine of its own.
func (c *conn) resume() {
	err := c.loop(c.ctx)
	if err == errParked {
		return
	}
	c.end(err)
	if c.leave != nil {
		c.leave()
	}
}

// close closes the connection; a parked one is resumed, so its reader sees the close
// and ends it. Safe from any goroutine.
func (c *conn) close() {
	var resume func()
	if c.raw != nil {
		resume = c.raw.Shut() // before the descriptor is closed (netio.Conn.Shut)
	}
	c.nc.Close()
	if resume != nil {
		go resume()
	}
}

// end finishes the connection once its reader stopped for err, and logs the close.
func (c *conn) end(err error) {
	c.cancel()
	c.stopClose()
	c.close()
	var out int64
	if c.w != nil {
		c.w.finish()
		<-c.w.done
		out = c.w.bytesOut.Load()
		if werr := c.w.err; werr != nil && !isClosing(werr) {
			err = werr // the writer's reason (slow player, write timeout) explains the close
		}
	}
	if ep := c.evicted.Load(); ep != nil {
		err = fmt.Errorf("play: %w", *ep)
	}
	// A player's subscriber ends for the connection's reason (Hub.SubscriberEnds):
	// its write timeout or its bad input, else its client left.
	switch closeReasonIndex(err, c.kicked.Load(), c.srv.base.Err() != nil) {
	case iTimeout:
		c.subEnd = relay.EndTimeout
	case iBadInput:
		c.subEnd = relay.EndBadInput
	}
	c.endAll("connection closed")
	c.countEnd(err)
	var in uint64
	if c.cr != nil {
		in = c.cr.BytesRead()
	}
	ev := c.log.Info()
	if err != nil && !isClosing(err) {
		ev = c.log.Warn()
	}
	reason := "client closed"
	if err != nil && !errors.Is(err, io.EOF) {
		reason = err.Error()
	}
	ev.Str("app", c.app).Str("stream", c.lastKey).Uint64("bytes_in", in).Int64("bytes_out", out).
		Dur("duration", time.Since(c.start)).Str("reason", reason).Msg("close")
}

// isClosing reports errors that are the normal end of a connection.
func isClosing(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, relay.ErrClosed)
}

// serve does the handshake, starts the writer and reads until the connection ends or
// parks (errParked).
func (c *conn) serve(ctx context.Context) (err error) {
	defer c.recoverPanic(&err)
	c.cfg = c.srv.connConfig() // the timeouts as of now (Server.SetTimeouts)
	if c.raw != nil {
		c.br = c.raw // buffers only while data is waiting
	} else {
		c.br = bufio.NewReaderSize(c.nc, 4<<10)
	}
	c.nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if err := serverHandshake(struct {
		io.Reader
		io.Writer
	}{c.br, c.nc}, time.Now()); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.nc.SetDeadline(time.Time{})
	c.cr = chunk.NewReader(c.br, chunk.ReaderConfig{MaxMessageSize: c.cfg.MaxMessageSize})
	c.w = newWriter(c)
	c.w.start(ctx)
	return c.readLoop(ctx)
}

// loop is readLoop for a resumed connection, with serve's panic guard.
func (c *conn) loop(ctx context.Context) (err error) {
	defer c.recoverPanic(&err)
	return c.readLoop(ctx)
}

func (c *conn) recoverPanic(err *error) {
	if r := recover(); r != nil {
		c.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("panic serving connection")
		*err = fmt.Errorf("%w: panic: %v", errProtocol, r)
	}
}

// readLoop reads and handles messages until the connection ends, or until it parks:
// then it returns errParked and the connection's goroutine is gone until the peer
// sends something (resume).
func (c *conn) readLoop(ctx context.Context) error {
	for {
		playing := c.w.playing()
		if playing {
			c.nc.SetReadDeadline(time.Time{})
		} else {
			c.nc.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout))
		}
		if playing && c.park() {
			return errParked
		}
		m, err := c.cr.ReadMessage()
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				return fmt.Errorf("idle for %s: %w", c.cfg.IdleTimeout, err)
			}
			return fmt.Errorf("read: %w", err)
		}
		if err := c.handle(ctx, m); err != nil {
			return err
		}
		if c.backlogged {
			return errBacklog
		}
		if read := c.cr.BytesRead(); c.peerWindow > 0 && read-c.lastAck >= uint64(c.peerWindow) {
			c.lastAck = read
			c.sendControl(typeAck, be32(uint32(read)))
		}
	}
}

// park hands a playing connection to the server's poller (relay/netio.Poller) instead
// of keeping this goroutine blocked in a read: a player sends next to nothing once it
// plays, and its output needs no goroutine of its own either (the lazy writer). It
// reports whether the connection parked; the caller must then return at once.
// Publishers and anything but plain TCP never park; connections that do not play are
// not offered (their idle timeout runs).
func (c *conn) park() bool {
	if c.poller == nil {
		return false
	}
	for _, ns := range c.streams {
		if ns.pub != nil {
			return false
		}
	}
	return c.raw.Park(c.poller, c.resume)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (c *conn) handle(ctx context.Context, m *chunk.Message) error {
	switch m.TypeID {
	case typeSetChunkSize, typeAbort, typeAck, typeSetPeerBW:
		// Chunk size and abort are applied by the chunk reader; acks and peer
		// bandwidth need no action from a relay.
	case typeWindowAckSize:
		if len(m.Payload) >= 4 {
			c.peerWindow = binary.BigEndian.Uint32(m.Payload)
		}
	case typeUserControl:
		if len(m.Payload) >= 6 && binary.BigEndian.Uint16(m.Payload) == userControlPingReq {
			c.sendControl(typeUserControl, append([]byte{0, userControlPingRes}, m.Payload[2:6]...))
		}
	case typeAudio, typeVideo:
		c.onMedia(m)
	case typeDataAMF0:
		return c.onData(m, m.Payload)
	case typeDataAMF3:
		if len(m.Payload) > 0 && m.Payload[0] == 0 {
			return c.onData(m, m.Payload[1:])
		}
		return c.onData(m, m.Payload)
	case typeCommandAMF0:
		return c.onCommand(ctx, m, m.Payload)
	case typeCommandAMF3:
		// Flash clients with objectEncoding 3 send AMF0 commands behind a 0x00 format byte.
		if len(m.Payload) > 0 && m.Payload[0] == 0 {
			return c.onCommand(ctx, m, m.Payload[1:])
		}
		return fmt.Errorf("%w: AMF3-encoded command is not supported", errProtocol)
	default:
		// Shared objects (16, 19), aggregates (22) and unknown types are ignored rather
		// than fatal (go-rtmp closes the connection on them).
		c.log.Debug().Uint8("type", m.TypeID).Int("len", len(m.Payload)).Msg("ignored message type")
	}
	return nil
}

// onMedia publishes an audio or video message.
func (c *conn) onMedia(m *chunk.Message) {
	ns := c.streams[m.StreamID]
	if ns == nil || ns.pub == nil || len(m.Payload) == 0 {
		return
	}
	pkt := &relay.Packet{Timestamp: ns.ts.unwrap(m.Timestamp), Payload: m.Payload}
	if m.TypeID == typeVideo {
		pkt.Kind = relay.KindVideo
		pkt.Keyframe, pkt.SeqHeader = videoFlags(m.Payload)
		if pkt.SeqHeader {
			ns.pub.SetMediaInfo(relay.MediaInfo{VideoCodec: videoCodecName(m.Payload)})
		}
	} else {
		pkt.Kind = relay.KindAudio
		pkt.SeqHeader = audioSeqHeader(m.Payload)
		if pkt.SeqHeader {
			ns.pub.SetMediaInfo(relay.MediaInfo{AudioCodec: audioCodecName(m.Payload)})
		}
	}
	ns.bytes += int64(len(m.Payload))
	ns.pub.WritePacket(pkt)
}

// onData handles data messages: "@setDataFrame", "onMetaData", {...} from publishers.
// The "@setDataFrame" name is stripped and the rest is kept byte for byte.
func (c *conn) onData(m *chunk.Message, body []byte) error {
	ns := c.streams[m.StreamID]
	if ns == nil || ns.pub == nil {
		return nil
	}
	vals, err := amf.Decode(body)
	if err != nil {
		return fmt.Errorf("data message: %w", err)
	}
	if len(vals) > 0 && amfStr(vals[0]) == "@setDataFrame" {
		_, rest, _ := amf.DecodeOne(body)
		body, vals = rest, vals[1:]
	}
	if len(vals) == 0 || amfStr(vals[0]) != "onMetaData" {
		c.log.Debug().Str("name", amfStr(firstOr(vals))).Msg("ignored data message")
		return nil
	}
	ns.pub.SetMediaInfo(metadataInfo(vals[1:]))
	ns.pub.WritePacket(&relay.Packet{Kind: relay.KindMetadata, Timestamp: ns.ts.unwrap(m.Timestamp), Payload: body})
	return nil
}

func firstOr(v []any) any {
	if len(v) == 0 {
		return nil
	}
	return v[0]
}

// status is an onStatus info object (RTMP 1.0 §7.2.2). Field order is kept on the wire.
type status struct {
	Level       string `amf0:"level"`
	Code        string `amf0:"code"`
	Description string `amf0:"description"`
}

type connectProps struct {
	FMSVer       string  `amf0:"fmsVer"`
	Capabilities float64 `amf0:"capabilities"`
	Mode         float64 `amf0:"mode"`
}

type connectInfo struct {
	Level          string  `amf0:"level"`
	Code           string  `amf0:"code"`
	Description    string  `amf0:"description"`
	ObjectEncoding float64 `amf0:"objectEncoding"`
}

// onCommand handles an AMF0 command (RTMP 1.0 §7.2; rtmp-interop.md for what OBS and
// ffmpeg send and expect).
func (c *conn) onCommand(ctx context.Context, m *chunk.Message, body []byte) error {
	vals, err := amf.Decode(body)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if len(vals) < 2 {
		return fmt.Errorf("%w: command with %d values", errProtocol, len(vals))
	}
	name := amfStr(vals[0])
	txn := amfNum(vals[1])
	if math.IsNaN(txn) {
		txn = 0
	}
	args := vals[2:]
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	if !c.connected && name != "connect" {
		return fmt.Errorf("%w: %q before connect", errProtocol, name)
	}
	switch name {
	case "connect":
		return c.onConnect(ctx, txn, amfProps(arg(0)))
	case "createStream":
		if len(c.streams) >= maxStreamsPerConn {
			c.sendCommand(0, "_error", txn, nil, status{"error", "NetConnection.Call.Failed", "too many streams"})
			return nil
		}
		c.nextSID++
		c.streams[c.nextSID] = &netStream{id: c.nextSID}
		c.sendCommand(0, "_result", txn, nil, float64(c.nextSID))
	case "releaseStream", "_checkbw", "_result", "_error", "onStatus", "receiveAudio", "receiveVideo", "onBWDone":
		// Nothing to answer.
	case "FCPublish":
		c.sendCommand(0, "onFCPublish", 0, nil, status{"status", "NetStream.Publish.Start", "FCPublish " + amfStr(arg(1))})
	case "publish":
		c.onPublish(ctx, m.StreamID, amfStr(arg(1)), amfStr(arg(2)))
	case "play":
		c.onPlay(ctx, m.StreamID, amfStr(arg(1)), amfNum(arg(2)))
	case "seek", "pause", "pauseRaw":
		c.onVODCommand(m.StreamID, name, args) // vod.go
	case "getStreamLength":
		c.sendCommand(0, "_result", txn, nil, float64(0))
	case "FCUnpublish":
		for _, ns := range c.streams {
			if ns.pub != nil && strings.HasSuffix(ns.key, "/"+stripQuery(amfStr(arg(1)))) {
				c.endStream(ns, "FCUnpublish")
			}
		}
		c.sendCommand(0, "onFCUnpublish", 0, nil, status{"status", "NetStream.Unpublish.Success", "FCUnpublish"})
	case "deleteStream":
		if f := amfNum(arg(1)); !math.IsNaN(f) && f >= 0 && f <= math.MaxUint32 {
			if ns := c.streams[uint32(f)]; ns != nil {
				c.endStream(ns, "deleteStream")
				delete(c.streams, ns.id)
			}
		}
	case "closeStream":
		if ns := c.streams[m.StreamID]; ns != nil {
			c.endStream(ns, "closeStream")
		}
	default:
		c.log.Debug().Str("command", name).Msg("unknown command")
		if txn != 0 {
			c.sendCommand(0, "_error", txn, nil, status{"error", "NetConnection.Call.Failed", "unknown command " + name})
		}
	}
	return nil
}

func stripQuery(name string) string {
	if i := strings.IndexByte(name, '?'); i >= 0 {
		return name[:i]
	}
	return name
}

func (c *conn) onConnect(ctx context.Context, txn float64, props map[string]any) error {
	if c.connected {
		return fmt.Errorf("%w: second connect", errProtocol)
	}
	rawApp := amfStr(props["app"])
	app := strings.Trim(stripQuery(rawApp), "/")
	c.tcURL = amfStr(props["tcUrl"])
	if !validApp(app) {
		c.sendControl(typeSetChunkSize, be32(c.srv.cfg.ChunkSize))
		c.sendCommand(0, "_error", txn, nil, status{"error", "NetConnection.Connect.InvalidApp", "invalid app name"})
		c.flushReplies()
		return fmt.Errorf("%w: invalid app %q", errProtocol, app)
	}
	// The access chain (the on_connect hook) decides before the answer; it may name
	// another app. A refusal gets _error, reaches the peer, then the connection closes.
	if err := c.authorizeConnect(ctx, &app, rawApp, amfStr(props["flashVer"])); err != nil {
		c.log.Warn().Str("app", app).Str("tc_url", redactURL(c.tcURL)).Err(err).Msg("connect refused")
		// Our messages are chunked at ChunkSize: announce it first, as on success.
		c.sendControl(typeSetChunkSize, be32(c.srv.cfg.ChunkSize))
		c.sendCommand(0, "_error", txn, nil, status{"error", "NetConnection.Connect.Rejected", err.Error()})
		c.flushReplies()
		return err
	}
	c.app = app
	c.connected = true
	enc := float64(0)
	if f := amfNum(props["objectEncoding"]); f == 3 {
		enc = 0 // we speak AMF0 only; answering 0 tells Flash clients so
	}
	cs := c.srv.cfg.ChunkSize
	c.sendControl(typeSetChunkSize, be32(cs))
	c.sendControl(typeWindowAckSize, be32(c.srv.cfg.AckWindow))
	c.sendControl(typeSetPeerBW, append(be32(c.srv.cfg.AckWindow), 2))
	c.sendCommand(0, "_result", txn,
		connectProps{FMSVer: "FMS/3,0,1,123", Capabilities: 31, Mode: 1},
		connectInfo{Level: "status", Code: "NetConnection.Connect.Success", Description: "Connection succeeded.", ObjectEncoding: enc})
	c.sendCommand(0, "onBWDone", 0, nil)
	c.log.Info().Str("app", app).Str("tc_url", redactURL(c.tcURL)).Str("flash_ver", amfStr(props["flashVer"])).Msg("connect")
	return nil
}

// validApp reports whether app can be the app of stream keys.
func validApp(app string) bool {
	return app != "" && !strings.ContainsAny(app, "/\x00") && len(app) <= 128 && relay.ValidateKey(app+"/x") == nil
}

// authorizeConnect asks the server's AccessController about a connect to *app
// (relay.ActionConnect: Key is the app, Query the tcUrl's query, else the app's) and
// sets *app to the app it renames it to. A refusal is an error wrapping
// relay.ErrAccessDenied that says why.
func (c *conn) authorizeConnect(ctx context.Context, app *string, rawApp, flashVer string) error {
	_, query, _ := strings.Cut(c.tcURL, "?")
	if query == "" {
		_, query, _ = strings.Cut(rawApp, "?")
	}
	ctx, cancel := context.WithTimeout(ctx, c.srv.cfg.AccessTimeout)
	defer cancel()
	d, err := c.srv.cfg.Access.Authorize(ctx, relay.AccessRequest{
		Action: relay.ActionConnect, Key: *app, Query: query, Protocol: c.protocol, Remote: c.remote,
		TCURL: redactURL(c.tcURL), FlashVer: flashVer,
	})
	switch {
	case err != nil:
		return fmt.Errorf("%w: connect %s: %w", relay.ErrAccessDenied, *app, err)
	case !d.Allow:
		return fmt.Errorf("%w: %s", relay.ErrAccessDenied, d.Reason)
	case d.Key != "" && !validApp(d.Key):
		return fmt.Errorf("%w: renamed to a bad app %q", relay.ErrAccessDenied, d.Key)
	case d.Key != "":
		*app = d.Key
	}
	return nil
}

// flushReplies waits, at most WriteTimeout, until the writer has written everything
// send queued, so that a refusal reaches the peer before the connection closes. Only
// for use before a play: the writer's byte count then holds replies alone.
func (c *conn) flushReplies() {
	deadline := time.Now().Add(c.srv.cfg.WriteTimeout)
	for c.w.bytesOut.Load() < c.queued && time.Now().Before(deadline) {
		select {
		case <-c.w.done:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// redactURL drops the query of a URL for logs (stream keys live there).
func redactURL(u string) string { return stripQuery(u) }

func (c *conn) stream(sid uint32) *netStream {
	ns := c.streams[sid]
	if ns == nil && len(c.streams) < maxStreamsPerConn {
		// Some clients publish on a stream id they never created; accept it.
		ns = &netStream{id: sid}
		c.streams[sid] = ns
	}
	return ns
}

func (c *conn) onPublish(ctx context.Context, sid uint32, name, typ string) {
	ns := c.stream(sid)
	key, query := relay.Key(c.app, name)
	if ns == nil || ns.pub != nil || ns.play {
		c.sendStatus(sid, "error", "NetStream.Publish.BadName", "stream id already in use")
		return
	}
	key, d, err := c.authorize(ctx, relay.ActionPublish, key, query)
	if err != nil {
		c.log.Warn().Str("stream", key).Err(err).Msg("publish refused")
		c.sendStatus(sid, "error", "NetStream.Publish.Unauthorized", err.Error())
		return
	}
	// Kick (relay.Hub.Kick) closes the socket; run then ends and unpublishes.
	pub, err := c.srv.hub.Publish(key, relay.PublisherInfo{Protocol: c.protocol, Remote: c.remote, Query: query,
		Mode: typ, Owner: d.Owner, Kick: func() { c.kicked.Store(true); c.close() }, OnClose: d.OnEnd})
	if err != nil {
		if d.OnEnd != nil {
			d.OnEnd() // allowed, but it never started
		}
		c.log.Warn().Str("stream", key).Err(err).Msg("publish refused")
		c.sendStatus(sid, "error", "NetStream.Publish.BadName", err.Error())
		return
	}
	ns.pub, ns.key, ns.since, ns.bytes, ns.ts = pub, key, time.Now(), 0, tsUnwrapper{}
	c.lastKey = key
	c.sendControl(typeUserControl, append([]byte{0, userControlBegin}, be32(sid)...))
	c.sendStatus(sid, "status", "NetStream.Publish.Start", key+" is now published")
	c.log.Info().Str("stream", key).Str("type", typ).Msg("publish")
}

// authorize asks the server's AccessController about a publish or play and returns the
// key to use (a controller may rename the stream) and the decision (its Owner and
// OnEnd). A refusal or a failed decision is an error wrapping relay.ErrAccessDenied.
func (c *conn) authorize(ctx context.Context, action relay.Action, key, query string) (string, relay.AccessDecision, error) {
	if err := relay.ValidateKey(key); err != nil {
		return key, relay.AccessDecision{}, err
	}
	return relay.Decide(ctx, c.srv.cfg.Access, c.srv.cfg.AccessTimeout, relay.AccessRequest{
		Action: action, Key: key, Query: query, Protocol: c.protocol, Remote: c.remote, TCURL: redactURL(c.tcURL),
	})
}

// onPlay handles play(name, start): start is NaN when absent (see openVOD for what it
// selects when Config.VOD is set).
func (c *conn) onPlay(ctx context.Context, sid uint32, name string, start float64) {
	ns := c.stream(sid)
	if ns == nil || ns.pub != nil || c.w.playing() {
		c.sendStatus(sid, "error", "NetStream.Play.Failed", "one play per connection")
		return
	}
	// The access decision comes first: a refused client never makes the relay open
	// and index a file.
	keyName := name
	if c.srv.cfg.VOD != nil {
		keyName = vodKeyName(name) // vod.go: "flv:x" and "x.flv" are the stream x
	}
	key, query := relay.Key(c.app, keyName)
	if err := relay.ValidateKey(key); err != nil {
		c.log.Info().Str("name", name).Err(err).Msg("play refused")
		c.sendStatus(sid, "error", "NetStream.Play.StreamNotFound", "no such stream or file")
		return
	}
	key, _, err := c.authorize(ctx, relay.ActionPlay, key, query)
	if err != nil {
		c.log.Warn().Str("stream", key).Err(err).Msg("play refused")
		c.sendStatus(sid, "error", "NetStream.Play.Failed", err.Error())
		return
	}
	vf, _, ok := c.openVOD(sid, name, start) // vod.go: a recorded file, or nil for live
	if !ok {
		return
	}
	if vf != nil {
		c.playVOD(ctx, ns, sid, key, vf, start)
		return
	}
	sub, err := c.srv.hub.Subscribe(key, relay.SubscribeOptions{
		Protocol: c.protocol,
		Remote:   c.remote,
		// A slow player is cut off at once: its writer may be blocked in Write. For
		// ErrNoPublisher (the writer's own Read evicts it) and at shutdown (ErrClosed)
		// the writer is not blocked and says why first (endPlay), then closes.
		OnEvict: func(err error) {
			if errors.Is(err, relay.ErrSlowSubscriber) {
				c.evicted.Store(&err)
				c.close()
			}
		},
		WriteThrough: c.w.writeThroughHook(),
		OnWake:       c.w.wakeHook(),
	})
	if err != nil {
		c.log.Warn().Str("stream", key).Err(err).Msg("play refused")
		c.sendStatus(sid, "error", "NetStream.Play.StreamNotFound", err.Error())
		return
	}
	ns.play, ns.key, ns.since = true, key, time.Now()
	c.lastKey = key
	c.srv.players.Add(1)
	c.sendControl(typeUserControl, append([]byte{0, userControlBegin}, be32(sid)...))
	c.sendStatus(sid, "status", "NetStream.Play.Reset", "playing and resetting "+key)
	c.sendStatus(sid, "status", "NetStream.Play.Start", "started playing "+key)
	c.sendData(sid, "|RtmpSampleAccess", true, true)
	c.w.play(sub, sid, key)
	c.log.Info().Str("stream", key).Msg("play")
}

// endStream ends a publish or play on ns.
func (c *conn) endStream(ns *netStream, why string) {
	if ns.vod != nil {
		c.endVOD(ns, why) // vod.go
		return
	}
	if ns.pub != nil {
		ns.pub.Close()
		c.log.Info().Str("stream", ns.key).Int64("bytes", ns.bytes).Dur("duration", time.Since(ns.since)).Str("reason", why).Msg("unpublish")
		ns.pub = nil
	}
	if ns.play {
		ns.play = false
		c.srv.players.Add(-1)
		if c.w != nil {
			st := c.w.stopPlay(c.subEnd)
			c.log.Info().Str("stream", ns.key).Int64("packets", st.Packets).Int64("bytes", st.Bytes).
				Int64("dropped", st.Dropped).Dur("duration", time.Since(ns.since)).Str("reason", why).Msg("play ended")
		}
	}
}

func (c *conn) endAll(why string) {
	for _, ns := range c.streams {
		c.endStream(ns, why)
	}
}

// sendControl queues a protocol control message (chunk stream 2, message stream 0).
func (c *conn) sendControl(typeID uint8, payload []byte) {
	c.scratch = chunk.AppendMessage(c.scratch[:0], c.srv.cfg.ChunkSize, csidControl, typeID, 0, 0, payload)
	c.send(c.scratch)
}

// sendCommand queues an AMF0 command message on message stream sid.
func (c *conn) sendCommand(sid uint32, name string, txn float64, vals ...any) {
	c.scratch = appendCommand(c.scratch[:0], c.srv.cfg.ChunkSize, csidCommand, typeCommandAMF0, sid, append([]any{name, txn}, vals...)...)
	c.send(c.scratch)
}

func (c *conn) sendStatus(sid uint32, level, code, desc string) {
	c.sendCommand(sid, "onStatus", 0, nil, status{level, code, desc})
}

func (c *conn) sendData(sid uint32, vals ...any) {
	c.scratch = appendCommand(c.scratch[:0], c.srv.cfg.ChunkSize, csidData, typeDataAMF0, sid, vals...)
	c.send(c.scratch)
}

// send queues chunked bytes for the writer. When the peer lets too much pile up, the
// connection is marked to close (serve checks backlogged after each message).
func (c *conn) send(b []byte) {
	if !c.w.enqueue(b) {
		c.backlogged = true
		return
	}
	c.queued += int64(len(b))
}

// appendCommand appends an AMF0 command or data message as chunks.
func appendCommand(dst []byte, chunkSize, csid uint32, typeID uint8, sid uint32, vals ...any) []byte {
	var body = amfBufPool.Get().(*amfBuf)
	defer amfBufPool.Put(body)
	body.Reset()
	if err := encodeAMF0(&body.Buffer, vals...); err != nil {
		// Only our own values are encoded here; a failure is a programming error.
		panic(err)
	}
	return chunk.AppendMessage(dst, chunkSize, csid, typeID, sid, 0, body.Bytes())
}

var amfBufPool = sync.Pool{New: func() any { return new(amfBuf) }}
