package bus

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRetryRecordRoundTrip(t *testing.T) {
	due := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
	src := &kgo.Record{
		Topic: "pyrite.test.retry", Partition: 2, Offset: 99, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{
			{Key: "ce_id", Value: []byte("id-1")},
			{Key: HeaderRetryAttempt, Value: []byte("1")}, // an earlier retry's: replaced
			{Key: HeaderOriginOffset, Value: []byte("1")},
		},
	}
	o := origin{"pyrite.work-effort.events", 1, 42}
	tests := []struct {
		name     string
		attempt  int
		handlers []string
	}{
		{"named handlers", 2, []string{"a", "b#1"}},
		{"every handler", 3, nil},
		{"queued", 0, []string{"async"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := retryRecord("pyrite.test.retry", src, o, tc.attempt, tc.handlers, due, errors.New("boom"))
			if string(rec.Key) != "k" || string(rec.Value) != "v" || rec.Topic != "pyrite.test.retry" {
				t.Fatalf("record %+v", rec)
			}
			c, err := parseControl(rec.Headers)
			if err != nil {
				t.Fatal(err)
			}
			want := control{attempt: tc.attempt, notBefore: due, handlers: tc.handlers, origin: o}
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("control %+v, want %+v", c, want)
			}
			if n := countKey(rec.Headers, HeaderRetryAttempt); n != 1 {
				t.Fatalf("%d attempt headers", n)
			}
			if kept := stripControl(rec.Headers); len(kept) != 1 || kept[0].Key != "ce_id" {
				t.Fatalf("original headers %v", kept)
			}
		})
	}
}

func countKey(hs []kgo.RecordHeader, k string) int {
	n := 0
	for _, h := range hs {
		if h.Key == k {
			n++
		}
	}
	return n
}

func TestParseControlErrors(t *testing.T) {
	good := retryRecord("r", &kgo.Record{}, origin{"t", 0, 0}, 1, nil, time.Unix(0, 0), nil).Headers
	with := func(k, v string) []kgo.RecordHeader {
		hs := slices.Clone(good)
		for i := range hs {
			if hs[i].Key == k {
				hs[i].Value = []byte(v)
			}
		}
		return hs
	}
	without := func(k string) []kgo.RecordHeader {
		return slices.DeleteFunc(slices.Clone(good), func(h kgo.RecordHeader) bool { return h.Key == k })
	}
	tests := []struct {
		name string
		hs   []kgo.RecordHeader
		want string
	}{
		{"no headers", nil, HeaderRetryAttempt + " missing"},
		{"negative attempt", with(HeaderRetryAttempt, "-1"), HeaderRetryAttempt},
		{"bad time", with(HeaderRetryNotBefore, "soon"), HeaderRetryNotBefore},
		{"missing origin topic", without(HeaderOriginTopic), HeaderOriginTopic + " missing"},
		{"empty origin topic", with(HeaderOriginTopic, ""), HeaderOriginTopic},
		{"partition too big", with(HeaderOriginPartition, "3000000000"), HeaderOriginPartition},
		{"bad offset", with(HeaderOriginOffset, "x"), HeaderOriginOffset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseControl(tc.hs)
			if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseControl: %v, want an ErrBadHeader about %s", err, tc.want)
			}
		})
	}
	if _, err := parseControl(good); err != nil {
		t.Fatalf("good headers: %v", err)
	}
}

func TestDLQRecord(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &kgo.Record{Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("x")}, {Key: HeaderRetryHandlers, Value: []byte("h")},
	}}
	long := errors.New(strings.Repeat("é", 1000))
	rec := dlqRecord("pyrite.g.dlq", "g", src, origin{"pyrite.work-effort.events", 2, 17}, ReasonExhausted, 5, []string{"a", "b"}, long, now)
	got := map[string]string{}
	for _, h := range rec.Headers {
		got[h.Key] = string(h.Value)
	}
	want := map[string]string{
		"ce_id": "x", HeaderDLQReason: "exhausted", HeaderDLQAttempts: "5", HeaderDLQHandler: "a,b",
		HeaderDLQGroup: "g", HeaderDLQTime: "2025-01-01T00:00:00Z", HeaderOriginTopic: "pyrite.work-effort.events",
		HeaderOriginPartition: "2", HeaderOriginOffset: "17",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got[HeaderRetryHandlers]; ok {
		t.Error("retry header copied into the dead letter")
	}
	if e := got[HeaderDLQError]; len(e) > maxErrorHeader+3 || !strings.HasSuffix(e, "é...") {
		t.Errorf("error header not truncated on a rune boundary: %d bytes, ends %q", len(e), e[len(e)-6:])
	}
	if string(rec.Key) != "k" || string(rec.Value) != "v" || rec.Topic != "pyrite.g.dlq" {
		t.Errorf("record %+v", rec)
	}
}

// FuzzParseControl feeds arbitrary headers to the retry-topic parser: whatever is on the
// retry topic must not crash a runner, and what parses must be rewritten identically.
func FuzzParseControl(f *testing.F) {
	good := retryRecord("r", &kgo.Record{}, origin{"t", 1, 2}, 3, []string{"a", "b"}, time.Unix(5, 6), nil).Headers
	var seed []string
	for _, h := range good {
		seed = append(seed, h.Key, string(h.Value))
	}
	f.Add(strings.Join(seed, "\x00"))
	f.Add(HeaderRetryAttempt + "\x00-5\x00" + HeaderRetryNotBefore + "\x00x")
	f.Fuzz(func(t *testing.T, s string) {
		parts := strings.Split(s, "\x00")
		var hs []kgo.RecordHeader
		for i := 0; i+1 < len(parts); i += 2 {
			hs = append(hs, kgo.RecordHeader{Key: parts[i], Value: []byte(parts[i+1])})
		}
		c, err := parseControl(hs)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		again, err := parseControl(retryRecord("r", &kgo.Record{}, c.origin, c.attempt, c.handlers, c.notBefore, nil).Headers)
		if err != nil {
			t.Fatalf("rewritten headers do not parse: %v", err)
		}
		if !again.notBefore.Equal(c.notBefore) {
			t.Fatalf("not-before %v became %v", c.notBefore, again.notBefore)
		}
		again.notBefore = c.notBefore
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: %+v became %+v", c, again)
		}
	})
}
