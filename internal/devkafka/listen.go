package devkafka

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Listen is the option that serves the embedded broker on ln, over TLS with
// cfg when cfg is not nil (use it in place of kfake.ListenFn and kfake.TLS),
// and that makes every ApiVersions answer list SaslHandshake from version 0,
// as real Kafka does (see the package doc). kfake computes each answer,
// version downgrade, client software name check and KIP-1242 cluster check
// included; only that one field of a successful answer changes on its way
// to the client. A SaslHandshake v0 still reaches kfake, which refuses it.
//
// It does so on a plain broker too: the list describes the protocol the
// broker speaks, which real Kafka answers alike on every listener, and one
// path for both keeps the secure one exercised by every plain run.
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
// notes the ApiVersions requests the broker reads and rewrites their answers
// as the broker writes them. kfake reads a connection's requests in one
// goroutine and writes its answers, one whole frame per Write, in another.
type handshakeConn struct {
	net.Conn
	heads requestHeads // read side only

	mu      sync.Mutex
	pending map[int32]int16 // correlation ID -> version of an unanswered ApiVersions request
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.heads.scan(p[:n], func(key, version int16, corr int32) {
		if key == int16(kmsg.ApiVersions) {
			c.mu.Lock()
			c.pending[corr] = version
			c.mu.Unlock()
		}
	})
	return n, err
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

// requestHeads follows the bytes a client sends and hands each request's
// head (after the 4-byte size: API key, version, correlation ID) to a
// function, however the bytes are split across reads.
type requestHeads struct {
	head [12]byte
	have int   // bytes of the current head seen
	skip int64 // bytes of the current request after its head still to come
}

func (r *requestHeads) scan(p []byte, fn func(key, version int16, corr int32)) {
	for len(p) > 0 {
		if r.skip > 0 {
			n := int(min(r.skip, int64(len(p))))
			r.skip -= int64(n)
			p = p[n:]
			continue
		}
		n := copy(r.head[r.have:], p)
		r.have += n
		p = p[n:]
		if r.have < len(r.head) {
			return
		}
		r.have = 0
		// A size below the head's 8 bytes is a request the broker fails to
		// parse; it closes the connection, so what follows does not matter.
		r.skip = max(int64(binary.BigEndian.Uint32(r.head[:4]))-8, 0)
		fn(int16(binary.BigEndian.Uint16(r.head[4:6])), int16(binary.BigEndian.Uint16(r.head[6:8])),
			int32(binary.BigEndian.Uint32(r.head[8:12])))
	}
}
