package devkafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyrite-dev/pyrite/internal/certs"
)

// saslBroker is a kfake broker with SCRAM users, served through Listen when
// listen is set (over TLS when cfg is not nil), else by kfake alone.
func saslBroker(t *testing.T, listen bool, cfg *tls.Config) string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.ClusterID("devkafka-listen-test"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-password")}
	if listen {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, Listen(ln, cfg))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// rawConn sends requests and reads answers as bytes, the way a client
// without a Kafka library would.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	corr int32
}

func dialRaw(t *testing.T, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	var (
		conn net.Conn
		err  error
	)
	if cfg != nil {
		conn, err = tls.Dial("tcp", addr, cfg)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn}
}

func (c *rawConn) send(reqs ...kmsg.Request) {
	c.t.Helper()
	var b []byte
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("devkafka-test"))
	for _, r := range reqs {
		c.corr++
		b = append(b, f.AppendRequest(nil, r, c.corr)...) // it sizes a frame at dst[0:4]
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one answer: its correlation ID and body.
func (c *rawConn) answer() (int32, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c.conn, size[:]); err != nil {
		return 0, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:], nil
}

// apiVersions decodes an ApiVersions answer to a request of version: an
// error answer is version 0 when the broker downgraded.
func apiVersions(t *testing.T, body []byte, version int16) *kmsg.ApiVersionsResponse {
	t.Helper()
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if binary.BigEndian.Uint16(body) == uint16(kerr.UnsupportedVersion.Code) {
		resp.Version = 0
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("ApiVersions v%d answer: %v", version, err)
	}
	return resp
}

func apiVersionsReq(version int16, name, swVersion string, cluster *string, node int32) kmsg.Request {
	r := kmsg.NewPtrApiVersionsRequest()
	r.Version = version
	r.ClientSoftwareName, r.ClientSoftwareVersion = name, swVersion
	r.ClusterID, r.NodeID = cluster, node
	return r
}

// TestListenListsSaslHandshakeV0: through Listen, every ApiVersions answer
// is kfake's own answer to the same request with SaslHandshake listed from
// version 0 (kfake lists it from 1): version downgrade, the v3+ software
// name check and the v5 cluster check answer as kfake does.
func TestListenListsSaslHandshakeV0(t *testing.T) {
	ca, err := certs.NewCA("devkafka test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := certs.NewServer(ca, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := server.TLS()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	cluster, other := "devkafka-listen-test", "another-cluster"
	reqs := map[string]kmsg.Request{
		"v0":                      apiVersionsReq(0, "", "", nil, -1),
		"v1":                      apiVersionsReq(1, "", "", nil, -1),
		"v2":                      apiVersionsReq(2, "", "", nil, -1),
		"v3":                      apiVersionsReq(3, "librdkafka", "2.0.2", nil, -1),
		"v3 invalid name":         apiVersionsReq(3, "-bad name-", "1", nil, -1),
		"v4":                      apiVersionsReq(4, "kgo", "1.0", nil, -1),
		"v5":                      apiVersionsReq(5, "kgo", "1.0", nil, -1),
		"v5 this cluster":         apiVersionsReq(5, "kgo", "1.0", &cluster, 0),
		"v5 another cluster":      apiVersionsReq(5, "kgo", "1.0", &other, 0),
		"v5 cluster without node": apiVersionsReq(5, "kgo", "1.0", &cluster, -1),
		"v9 (downgraded)":         apiVersionsReq(9, "kgo", "1.0", nil, -1),
	}
	for _, mode := range []struct {
		name string
		srv  *tls.Config
		cli  *tls.Config
	}{
		{"plain", nil, nil},
		{"TLS", &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: roots}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			patched := dialRaw(t, saslBroker(t, true, mode.srv), mode.cli)
			plain := dialRaw(t, saslBroker(t, false, nil), nil)
			successes := 0
			for name, req := range reqs {
				v := req.GetVersion()
				patched.send(req)
				plain.send(req)
				_, got, err := patched.answer()
				if err != nil {
					t.Fatalf("%s through Listen: %v", name, err)
				}
				_, want, err := plain.answer()
				if err != nil {
					t.Fatalf("%s from kfake: %v", name, err)
				}
				gotResp, wantResp := apiVersions(t, got, v), apiVersions(t, want, v)
				if wantResp.ErrorCode == 0 {
					successes++
					hs := handshakeRange(wantResp)
					if hs == nil || hs.MinVersion != 1 || hs.MaxVersion != 1 {
						t.Fatalf("%s: kfake lists SaslHandshake as %+v; this test expects 1..1", name, hs)
					}
					hs.MinVersion = 0
				}
				if !reflect.DeepEqual(gotResp, wantResp) {
					t.Errorf("%s: through Listen\n%+v\nwant kfake's answer with SaslHandshake from 0\n%+v", name, gotResp, wantResp)
				}
				if hs := handshakeRange(gotResp); wantResp.ErrorCode == 0 && (hs.MinVersion != 0 || hs.MaxVersion != 1) {
					t.Errorf("%s: SaslHandshake %d..%d, want 0..1", name, hs.MinVersion, hs.MaxVersion)
				}
			}
			if successes < 6 || successes == len(reqs) {
				t.Fatalf("%d of %d requests answered without an error: the table no longer covers both kinds", successes, len(reqs))
			}

			// Requests sent back to back in one write, each answered in turn
			// (before authenticating, the broker serves only these two keys).
			hs := kmsg.NewPtrSASLHandshakeRequest()
			hs.Version, hs.Mechanism = 1, "SCRAM-SHA-256"
			patched.send(reqs["v3"], hs, reqs["v0"])
			for i, v := range []int16{3, -1, 0} {
				corr, body, err := patched.answer()
				if err != nil {
					t.Fatalf("pipelined answer %d: %v", i, err)
				}
				if corr != patched.corr-2+int32(i) {
					t.Fatalf("pipelined answer %d has correlation ID %d", i, corr)
				}
				if v >= 0 {
					if hs := handshakeRange(apiVersions(t, body, v)); hs.MinVersion != 0 {
						t.Errorf("pipelined ApiVersions v%d lists SaslHandshake from %d", v, hs.MinVersion)
					}
				}
			}
		})
	}
}

func handshakeRange(resp *kmsg.ApiVersionsResponse) *kmsg.ApiVersionsResponseApiKey {
	for i := range resp.ApiKeys {
		if resp.ApiKeys[i].ApiKey == int16(kmsg.SASLHandshake) {
			return &resp.ApiKeys[i]
		}
	}
	return nil
}

// TestListenRefusesSaslHandshakeV0: listing version 0 changes nothing about
// serving it: a v0 handshake (after which raw SASL bytes would follow) is
// refused, the broker closing the connection without an answer, while v1
// (SaslAuthenticate follows) is served.
func TestListenRefusesSaslHandshakeV0(t *testing.T) {
	addr := saslBroker(t, true, nil)
	handshake := func(version int16) kmsg.Request {
		r := kmsg.NewPtrSASLHandshakeRequest()
		r.Version = version
		r.Mechanism = "SCRAM-SHA-256"
		return r
	}

	c := dialRaw(t, addr, nil)
	c.send(handshake(1))
	_, body, err := c.answer()
	if err != nil {
		t.Fatalf("SaslHandshake v1: %v", err)
	}
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.Version = 1
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("SaslHandshake v1: error code %d, %v", resp.ErrorCode, err)
	}

	c = dialRaw(t, addr, nil)
	c.send(handshake(0))
	if _, body, err := c.answer(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("SaslHandshake v0: answer %x, error %v; want the connection closed", body, err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestListenReadsSplitRequests: requests reach the broker whole and in
// order however the client's bytes are split across writes, and the
// ApiVersions answers among them are patched.
func TestListenReadsSplitRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), Listen(ln, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	addr := cl.ListenAddrs()[0]
	reqs := []kmsg.Request{apiVersionsReq(3, "a", "1", nil, -1), kmsg.NewPtrMetadataRequest(),
		apiVersionsReq(0, "", "", nil, -1), apiVersionsReq(4, "b", "2", nil, -1)}
	for _, chunk := range []int{1, 3, 7, 12, 13, 1 << 20} {
		c := dialRaw(t, addr, nil)
		f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("devkafka-test"))
		var stream []byte
		for i, r := range reqs {
			r.SetVersion(min(r.GetVersion(), r.MaxVersion()))
			stream = append(stream, f.AppendRequest(nil, r, int32(100+i))...)
		}
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			if _, err := c.conn.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		for i, r := range reqs {
			corr, body, err := c.answer()
			if err != nil || corr != int32(100+i) {
				t.Fatalf("chunks of %d: answer %d: correlation %d, %v", chunk, i, corr, err)
			}
			if r.Key() == int16(kmsg.ApiVersions) {
				if h := handshakeRange(apiVersions(t, body, r.GetVersion())); h == nil || h.MinVersion != 0 {
					t.Errorf("chunks of %d: answer %d lists SaslHandshake as %+v", chunk, i, h)
				}
			}
		}
	}
}

// TestListenKeepsAbortedRecordsOut: a read_committed consumer whose fetch
// limit cuts an answer right after an aborted transaction must still drop
// that transaction's records. kfake alone serves them as committed (it
// leaves the aborted transactions of the partition the limit cut out of the
// answer); through Listen the limit never cuts, and they stay out.
func TestListenKeepsAbortedRecordsOut(t *testing.T) {
	for _, listen := range []bool{false, true} {
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "t")}
		if listen {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, Listen(ln, nil))
		}
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		brokers := kgo.SeedBrokers(c.ListenAddrs()...)
		value := bytes.Repeat([]byte("v"), 1000)
		plain, err := kgo.NewClient(brokers, kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		txn, err := kgo.NewClient(brokers, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.TransactionalID("devkafka-test"))
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Close()
		ctx := t.Context()
		// committed, aborted (with its ABORT marker), committed: each batch about 1,070 bytes.
		if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "t", Key: []byte("committed-1"), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "t", Key: []byte("aborted"), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Fatal(err)
		}
		if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "t", Key: []byte("committed-2"), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		// A request limit that takes the first two batches and the marker, not the third.
		cons, err := kgo.NewClient(brokers, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(2500))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		var keys []string
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		for len(keys) < 2 || (len(keys) < 3 && keys[len(keys)-1] != "committed-2") {
			fs := cons.PollFetches(pctx)
			if pctx.Err() != nil {
				break
			}
			fs.EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
		}
		cancel()
		aborted := slices.Contains(keys, "aborted")
		switch {
		case listen && (aborted || !slices.Equal(keys, []string{"committed-1", "committed-2"})):
			t.Errorf("through Listen: read %v, want committed-1, committed-2", keys)
		case !listen && !aborted:
			t.Errorf("kfake alone: read %v without the aborted record: kfake keeps the aborted transactions of a cut answer now, and Listen's Fetch amendment can go", keys)
		}
	}
}

// fetchRequests are Fetch requests of every version with IsolationLevel,
// read_committed or not, as a client formats them.
func fetchRequests() (frames [][]byte, reqs []*kmsg.FetchRequest) {
	fmtr := kmsg.NewRequestFormatter(kmsg.FormatterClientID("devkafka-test"))
	for v := int16(4); v <= kmsg.NewPtrFetchRequest().MaxVersion(); v++ {
		for _, iso := range []int8{0, 1} {
			req := kmsg.NewPtrFetchRequest()
			req.Version, req.IsolationLevel, req.MaxBytes, req.MaxWaitMillis, req.MinBytes = v, iso, 2500, 500, 1
			req.SessionEpoch, req.Rack = -1, "r1"
			t := kmsg.NewFetchRequestTopic()
			t.Topic = "t"
			p := kmsg.NewFetchRequestTopicPartition()
			p.Partition, p.FetchOffset, p.PartitionMaxBytes = 2, 42, 1<<20
			t.Partitions = append(t.Partitions, p)
			req.Topics = append(req.Topics, t)
			frames = append(frames, fmtr.AppendRequest(nil, req, 7))
			reqs = append(reqs, req)
		}
	}
	return frames, reqs
}

// parseFetch reads a Fetch request frame of version back as a request.
func parseFetch(t *testing.T, frame []byte, version int16) *kmsg.FetchRequest {
	t.Helper()
	r := kbin.Reader{Src: frame[12:]}
	r.NullableString()
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	if req.IsFlexible() {
		for n := r.Uvarint(); n > 0; n-- {
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		t.Fatalf("v%d: %v", version, err)
	}
	return req
}

// TestUnlimitReadCommitted: a read_committed Fetch request of every version
// comes out as the same request with MaxBytes at the largest int32; a
// read_uncommitted one is left alone.
func TestUnlimitReadCommitted(t *testing.T) {
	frames, reqs := fetchRequests()
	for i, frame := range frames {
		want := *reqs[i]
		orig := bytes.Clone(frame)
		ok := unlimitReadCommitted(frame, want.Version)
		out := frame
		if ok != (want.IsolationLevel == 1) {
			t.Errorf("v%d isolation %d: changed %v", want.Version, want.IsolationLevel, ok)
		}
		if !ok {
			if !bytes.Equal(out, orig) {
				t.Errorf("v%d isolation %d: left alone, yet the bytes changed", want.Version, want.IsolationLevel)
			}
			continue
		}
		got, before := parseFetch(t, out, want.Version), parseFetch(t, orig, want.Version)
		before.MaxBytes = math.MaxInt32
		if !reflect.DeepEqual(got, before) || before.IsolationLevel != 1 || before.MinBytes != 1 {
			t.Errorf("v%d: got %+v, want %+v", want.Version, *got, *before)
		}
	}
}

// FuzzUnlimitReadCommitted: whatever bytes a client sends as a Fetch request
// of whatever version, the amendment never panics (the broker's read loop
// would die with it) and changes at most the four bytes of MaxBytes.
func FuzzUnlimitReadCommitted(f *testing.F) {
	frames, reqs := fetchRequests()
	for i := range frames {
		f.Add(frames[i], reqs[i].Version)
	}
	f.Fuzz(func(t *testing.T, frame []byte, version int16) {
		if len(frame) < 12 {
			return // next hands it only frames holding a whole head
		}
		orig := bytes.Clone(frame)
		ok := unlimitReadCommitted(frame, version)
		out := frame
		diff := 0
		for i := range out {
			if out[i] != orig[i] {
				diff++
			}
		}
		if len(out) != len(orig) || diff > 4 || (!ok && diff > 0) {
			t.Fatalf("v%d: %d bytes changed (amended %v)", version, diff, ok)
		}
	})
}
