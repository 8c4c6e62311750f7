package codec_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
	twmbavro "github.com/twmb/avro"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// benchPeers holds WorkEffort:ProgressUpdated v3 ready for every library compared: the codec
// (framed, through the registry cache), hamba/avro with its own API (body only), twmb/avro
// and linkedin/goavro.
type benchPeers struct {
	fx      *fixture
	v1, v3  *codec.Schema
	value   progressV3
	native  map[string]any // for goavro
	hamba   avro.API
	hambaS  avro.Schema
	twmb    *twmbavro.Schema
	goavro  *goavro.Codec
	framed  []byte // codec.Encode(v3, value)
	framed1 []byte // codec.Encode(v1, ...) for the resolution case
	body    []byte // the Avro body alone
}

func newBenchPeers(tb testing.TB) *benchPeers {
	tb.Helper()
	fx := newFixture(tb)
	p := &benchPeers{
		fx:     fx,
		v1:     fx.schema(tb, progressSubject, 1),
		v3:     fx.schema(tb, progressSubject, 3),
		value:  progressV3{OldProgress: 10, NewProgress: 60, Delta: 50, Formatted: "60%"},
		native: map[string]any{"oldProgress": int32(10), "newProgress": int32(60), "delta": int32(50), "formatted": "60%"},
		hamba:  avro.Config{}.Freeze(),
	}
	text := p.v3.Text
	var err error
	if p.hambaS, err = avro.ParseWithCache(text, "", &avro.SchemaCache{}); err != nil {
		tb.Fatal(err)
	}
	if p.twmb, err = twmbavro.Parse(text); err != nil {
		tb.Fatal(err)
	}
	if p.goavro, err = goavro.NewCodec(text); err != nil {
		tb.Fatal(err)
	}
	if p.framed, err = fx.codec.Encode(p.v3, p.value); err != nil {
		tb.Fatal(err)
	}
	if p.framed1, err = fx.codec.Encode(p.v1, progressV1{10, 60}); err != nil {
		tb.Fatal(err)
	}
	p.body = p.framed[codec.HeaderSize:]
	return p
}

// The peers produce the same body, so the benchmarks compare like with like.
func TestBenchPeersAgree(t *testing.T) {
	p := newBenchPeers(t)
	h, err := p.hamba.Marshal(p.hambaS, p.value)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := p.twmb.Encode(&p.value)
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.goavro.BinaryFromNative(nil, p.native)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"hamba": h, "twmb": tw, "goavro": g} {
		if !bytes.Equal(b, p.body) {
			t.Errorf("%s body %x, codec body %x", name, b, p.body)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	p := newBenchPeers(b)
	b.Run("codec/Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.fx.codec.Encode(p.v3, &p.value); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A map, as handlers and reactors hold data, beside hamba encoding the same map.
	m := map[string]any{"oldProgress": 41, "newProgress": 42, "delta": 1, "formatted": "42%"}
	b.Run("codec/Encode-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.fx.codec.Encode(p.v3, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba/Marshal-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.hamba.Marshal(p.hambaS, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec/AppendEncode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = p.fx.codec.AppendEncode(buf[:0], p.v3, &p.value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba/Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.hamba.Marshal(p.hambaS, &p.value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("twmb/AppendEncode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = p.twmb.AppendEncode(buf[:0], &p.value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro/BinaryFromNative", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = p.goavro.BinaryFromNative(buf[:0], p.native); err != nil {
				b.Fatal(err)
			}
		}
	})
	// goavro doing what each codec call does, so that each has a like-for-like peer: a framed
	// value appended to a reused buffer (as AppendEncode), and a framed value of its own (as
	// Encode; srclient's README frames goavro's output this way).
	b.Run("goavro/framed-append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = p.goavro.BinaryFromNative(codec.AppendHeader(buf[:0], p.v3.ID), p.native); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro/framed-new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.goavro.BinaryFromNative(codec.AppendHeader(nil, p.v3.ID), p.native); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	p := newBenchPeers(b)
	ctx := context.Background()
	b.Run("codec/Decode", func(b *testing.B) {
		b.ReportAllocs()
		var v progressV3
		for b.Loop() {
			if _, err := p.fx.codec.Decode(ctx, p.framed, p.v3, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec/Decode-v1-as-v3", func(b *testing.B) {
		b.ReportAllocs()
		var v progressV3
		for b.Loop() {
			if _, err := p.fx.codec.Decode(ctx, p.framed1, p.v3, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec/Decode-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if _, err := p.fx.codec.Decode(ctx, p.framed, p.v3, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba/Unmarshal-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := p.hamba.Unmarshal(p.hambaS, p.body, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba/Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var v progressV3
		for b.Loop() {
			if err := p.hamba.Unmarshal(p.hambaS, p.body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("twmb/Decode", func(b *testing.B) {
		b.ReportAllocs()
		var v progressV3
		for b.Loop() {
			if _, err := p.twmb.Decode(p.body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro/NativeFromBinary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := p.goavro.NativeFromBinary(p.body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Encode's results come from a shared arena (see arena.go); on more than one core it must
// scale as the allocation-free peer does.
func BenchmarkEncodeParallel(b *testing.B) {
	p := newBenchPeers(b)
	b.Run("codec/Encode", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			v := p.value
			for pb.Next() {
				if _, err := p.fx.codec.Encode(p.v3, &v); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("goavro/BinaryFromNative", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 64)
			for pb.Next() {
				var err error
				if buf, err = p.goavro.BinaryFromNative(buf[:0], p.native); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
