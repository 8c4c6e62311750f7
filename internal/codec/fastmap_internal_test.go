package codec

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"
)

// The map plan must put into the map exactly what hamba's map decoding puts there (keys and
// dynamic types), and decode only the bodies hamba decodes.
func TestFastMapDecodeMatchesHamba(t *testing.T) {
	compiled := map[string]bool{}
	for _, p := range append(pairs(t), eventPairs(t)...) {
		plan := compileMapDecoder(avro.Config{}.Freeze(), p.writer, p.reader)
		if plan == nil {
			continue
		}
		if compiled[p.name] {
			continue // the same schemas with another Go type
		}
		compiled[p.name] = true
		t.Run(p.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, uint64(len(p.name))))
			b, s := newBinding(p.writer, p.reader), p.resolved(t)
			check := func(body []byte, what string) {
				t.Helper()
				var got, want map[string]any
				ok := plan.decode(body, &got, new(outArena))
				err := decodeHamba(b, s, body, &want)
				if ok != (err == nil) {
					t.Fatalf("%s: body %x: map plan ok = %v, hamba error = %v", what, body, ok, err)
				}
				if ok && !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: body %x:\nmap plan %#v\nhamba    %#v", what, body, got, want)
				}
			}
			for i := range 300 {
				body := randomBody(t, r, p.writer)
				check(body, fmt.Sprint("value ", i))
				check(body[:r.IntN(len(body)+1)], fmt.Sprint("prefix of ", i))
				check(append(bytes.Clone(body), byte(r.Uint32())), fmt.Sprint("extended ", i))
				if len(body) > 0 {
					m := bytes.Clone(body)
					m[r.IntN(len(m))] ^= byte(1 << r.IntN(8))
					check(m, fmt.Sprint("mutated ", i))
				}
			}
		})
	}
	// Not vacuous: the runner's common case, an old ProgressUpdated read as the newest,
	// has a plan.
	for _, name := range []string{"progress v3", "progress v1 as v3", "progress v2 as v3"} {
		if !compiled[name] {
			t.Errorf("%s: no map plan", name)
		}
	}
	// Records with a field hamba decodes to another type (a timestamp to time.Time, a union
	// to a map, an enum) are left to hamba.
	if compileMapDecoder(avro.Config{}.Freeze(), parse(t, wideSchema), parse(t, wideSchema)) != nil {
		t.Error("the wide schema got a map plan")
	}
}

// Decode into a map goes by the map plan, and a map that is not nil is added to by hamba.
func TestDecodeIntoMap(t *testing.T) {
	_, _, v3 := progressSchemas(t)
	b := newBinding(v3, v3)
	body, err := avro.Marshal(v3, map[string]any{"oldProgress": 1, "newProgress": 300, "delta": 299, "formatted": "300%"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.decoderOf(v3, new(map[string]any))
	if err != nil || e.mapPlan == nil {
		t.Fatalf("no map plan (%v)", err)
	}
	var m map[string]any
	if err := decodeBody(b, v3, body, &m, new(outArena)); err != nil || m["newProgress"] != 300 || m["formatted"] != "300%" {
		t.Fatalf("decode: %v %#v", err, m)
	}
	m2 := map[string]any{"kept": true}
	if err := decodeBody(b, v3, body, &m2, new(outArena)); err != nil || m2["kept"] != true || m2["delta"] != 299 {
		t.Fatalf("decode into a map with a key: %v %#v", err, m2)
	}
}

// The map encode plan writes hamba's bytes for every map it takes, and leaves to the slow
// path (validate, then hamba) every map it cannot take as validate and hamba would.
func TestFastMapEncodeMatchesHamba(t *testing.T) {
	compiled := 0
	seen := map[avro.Schema]bool{}
	for _, p := range append(pairs(t), eventPairs(t)...) {
		if seen[p.writer] {
			continue
		}
		seen[p.writer] = true
		api := avro.Config{}.Freeze()
		plan := compileMapEncoder(api, p.writer)
		if plan == nil {
			continue
		}
		compiled++
		t.Run(p.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(4, uint64(len(p.name))))
			for i := range 300 {
				v := genGeneric(r, p.writer).(map[string]any)
				got, ok := plan.appendBody(nil, v)
				want, err := api.Marshal(p.writer, v)
				if !ok || err != nil || !bytes.Equal(got, want) {
					t.Fatalf("value %d %#v: map plan %x (ok %v), hamba %x (%v)", i, v, got, ok, want, err)
				}
			}
		})
	}
	if compiled == 0 {
		t.Fatal("no schema got a map encode plan")
	}
	_, _, v3 := progressSchemas(t)
	plan := compileMapEncoder(avro.Config{}.Freeze(), v3)
	if plan == nil {
		t.Fatal("ProgressUpdated v3 has no map encode plan")
	}
	ok := map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1, "formatted": "2%"}
	if _, took := plan.appendBody(nil, ok); !took {
		t.Fatal("a plain map was not taken")
	}
	for name, v := range map[string]map[string]any{
		"out of int32 range": {"oldProgress": 1 << 40, "newProgress": 2, "delta": 1, "formatted": "2%"},
		"int64 for an int":   {"oldProgress": int64(1), "newProgress": 2, "delta": 1, "formatted": "2%"},
		"missing field":      {"newProgress": 2, "delta": 1, "formatted": "2%"},
		"nil value":          {"oldProgress": nil, "newProgress": 2, "delta": 1, "formatted": "2%"},
		"float for an int":   {"oldProgress": 1.0, "newProgress": 2, "delta": 1, "formatted": "2%"},
	} {
		if _, took := plan.appendBody(nil, v); took {
			t.Errorf("%s: taken by the map plan", name)
		}
	}
}

// Codec.Encode of a map gives the bytes of the slow path, and its errors for maps the fast
// path leaves.
func TestEncodeMap(t *testing.T) {
	_, _, v3 := progressSchemas(t)
	s := &Schema{ID: 7, Subject: "p", Version: 3, Avro: v3, bind: newBinding(v3, v3)}
	c := &Codec{}
	v := map[string]any{"oldProgress": 1, "newProgress": 300, "delta": 299, "formatted": "300%", "extra": true}
	got, err := c.Encode(s, v)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.encodeBody(s, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(AppendHeader(nil, 7), w.Buffer()...); !bytes.Equal(got, want) {
		t.Fatalf("Encode %x, slow path %x", got, want)
	}
	if app, err := c.AppendEncode(nil, s, v); err != nil || !bytes.Equal(app, got) {
		t.Fatalf("AppendEncode %x %v", app, err)
	}
	if _, err := c.Encode(s, map[string]any{"oldProgress": 1 << 40, "newProgress": 2, "delta": 1, "formatted": "x"}); err == nil {
		t.Fatal("an out-of-range int was encoded")
	}
}
