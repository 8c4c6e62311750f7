package devkafka

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Listen is the option that serves the embedded broker on ln, over TLS with
// cfg when cfg is not nil (use it in place of kfake.ListenFn and kfake.TLS).
// It amends two things on their way between client and broker (see the
// package doc), and nothing else:
//
//   - every ApiVersions answer lists SaslHandshake from version 0, as real
//     Kafka does. kfake computes each answer, version downgrade, client
//     software name check and KIP-1242 cluster check included; only that
//     one field of a successful answer changes on its way to the client. A
//     SaslHandshake v0 still reaches kfake, which refuses it.
//   - a read_committed Fetch request reaches kfake without a limit of its
//     own (MaxBytes), so each partition's answer ends at that partition's
//     limit, never at the request's: kfake leaves a partition's aborted
//     transactions out of the answer when the request's limit cuts it, and
//     a read_committed consumer then takes an aborted record as committed.
//     The answer stays bounded by the partitions' limits (PartitionMaxBytes).
//
// It does so on a plain broker too: real Kafka answers alike on every
// listener, and one path for both keeps the secure one exercised by every
// plain run.
//
// kfake asks for a listener once per broker, so Listen is for one broker.
func Listen(ln net.Listener, cfg *tls.Config) kfake.Opt {
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	ln = handshakeListener{ln}
	return kfake.ListenFn(func(string, string) (net.Listener, error) { return ln, nil })
}

type handshakeListener struct{ net.Listener }

func (l handshakeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: c, pending: map[int32]int16{}}, nil
}

// handshakeConn is a broker's side of a client connection (after TLS): it
// hands the broker the client's requests a whole frame at a time, amending
// read_committed Fetch requests and noting ApiVersions requests, and
// rewrites the ApiVersions answers as the broker writes them. kfake reads a
// connection's requests in one goroutine and writes its answers, one whole
// frame per Write, in another.
type handshakeConn struct {
	net.Conn
	frame []byte // read side only: the current request frame
	in    []byte // read side only: what the broker has yet to read of it
	err   error  // read side only: the error after in

	mu      sync.Mutex
	pending map[int32]int16 // correlation ID -> version of an unanswered ApiVersions request
}

// maxFrame is the largest request handled a frame at a time; a larger size
// goes to the broker as it comes (kfake refuses it) and the connection is
// passed through from then on.
const maxFrame = 256 << 20

func (c *handshakeConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 && c.err == nil {
		c.in, c.err = c.next()
	}
	if len(c.in) == 0 {
		if c.err == errPassThrough {
			return c.Conn.Read(p)
		}
		return 0, c.err
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

var errPassThrough = errors.New("devkafka: pass through")

// next reads the client's next request frame and returns it as the broker
// is to read it, with the error that follows it (a frame cut short by the
// client goes to the broker as far as it came).
func (c *handshakeConn) next() ([]byte, error) {
	c.frame = append(c.frame[:0], 0, 0, 0, 0)
	if n, err := io.ReadFull(c.Conn, c.frame); err != nil {
		return c.frame[:n], err
	}
	size := int32(binary.BigEndian.Uint32(c.frame))
	if size < 0 || size > maxFrame {
		return c.frame, errPassThrough
	}
	c.frame = slices.Grow(c.frame, int(size))[:4+size]
	if n, err := io.ReadFull(c.Conn, c.frame[4:]); err != nil {
		return c.frame[:4+n], err
	}
	if size < 8 {
		return c.frame, nil // the broker fails to parse it and closes the connection
	}
	key, version := int16(binary.BigEndian.Uint16(c.frame[4:])), int16(binary.BigEndian.Uint16(c.frame[6:]))
	switch key {
	case int16(kmsg.ApiVersions):
		c.mu.Lock()
		c.pending[int32(binary.BigEndian.Uint32(c.frame[8:]))] = version
		c.mu.Unlock()
	case int16(kmsg.Fetch):
		unlimitReadCommitted(c.frame, version)
	}
	return c.frame, nil
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if len(p) < 8 {
		return c.Conn.Write(p)
	}
	corr := int32(binary.BigEndian.Uint32(p[4:8]))
	c.mu.Lock()
	version, ok := c.pending[corr]
	delete(c.pending, corr)
	c.mu.Unlock()
	if !ok {
		return c.Conn.Write(p)
	}
	out, patched := listHandshakeV0(p, version)
	if !patched {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// listHandshakeV0 returns frame, kfake's answer to an ApiVersions request
// of version (size, correlation ID, body; the header of an ApiVersions
// answer is never flexible), with SaslHandshake listed from version 0, and
// whether it changed anything. An answer carrying an error (a downgrade
// answers version 0 with UNSUPPORTED_VERSION), one that does not parse or
// does not list SaslHandshake above 0 is left as it is.
func listHandshakeV0(frame []byte, version int16) ([]byte, bool) {
	body := frame[8:]
	if len(body) < 2 || binary.BigEndian.Uint16(body) != 0 { // the error code leads every version
		return nil, false
	}
	resp := kmsg.ApiVersionsResponse{Version: version}
	if err := resp.ReadFrom(body); err != nil {
		return nil, false
	}
	changed := false
	for i, k := range resp.ApiKeys {
		if k.ApiKey == int16(kmsg.SASLHandshake) && k.MinVersion > 0 {
			resp.ApiKeys[i].MinVersion = 0
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	out := resp.AppendTo(append(make([]byte, 0, len(frame)), frame[:8]...))
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, true
}

// unlimitReadCommitted lifts, in place, the MaxBytes of frame, a Fetch
// request of version, to the largest int32 when it reads committed records,
// and reports whether it did. The fields before MaxBytes have fixed sizes in
// every version, so nothing else is parsed or moved; a request too short to
// hold them is left as it is for the broker to refuse.
func unlimitReadCommitted(frame []byte, version int16) bool {
	off, ok := fetchMaxBytesOffset(frame, version)
	if !ok || frame[off+4] != 1 { // IsolationLevel follows MaxBytes: 1 is read_committed
		return false
	}
	binary.BigEndian.PutUint32(frame[off:], math.MaxInt32)
	return true
}

// fetchMaxBytesOffset returns where MaxBytes is in frame, a Fetch request of
// version: after the header (size, key, version, correlation ID, client ID,
// and tagged fields when the request is flexible), ReplicaID (before v15),
// MaxWaitMillis and MinBytes. ok is false for versions before 4 (no
// IsolationLevel) or above what kmsg knows, and for a frame too short.
func fetchMaxBytesOffset(frame []byte, version int16) (off int, ok bool) {
	req := kmsg.FetchRequest{Version: version}
	if version < 4 || version > req.MaxVersion() || len(frame) < 14 {
		return 0, false
	}
	r := kbin.Reader{Src: frame[12:]}
	r.NullableString()
	if req.IsFlexible() {
		for n := r.Uvarint(); n > 0 && r.Ok(); n-- {
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
	}
	if !r.Ok() {
		return 0, false
	}
	off = len(frame) - len(r.Src) + 8 // MaxWaitMillis, MinBytes
	if version < 15 {
		off += 4 // ReplicaID
	}
	if len(frame) < off+5 {
		return 0, false
	}
	return off, true
}
