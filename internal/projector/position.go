package projector

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// ErrBadPosition is returned for a Last-Event-ID this stream did not write.
var ErrBadPosition = errors.New("projector: not a stream position")

// position is where a stream client is in Kafka: for each partition of the
// projection's topics, the offset of the next event it has not been sent
// (every event below it was sent or filtered out). A partition it lacks is
// at offset 0.
type position map[store.TopicPartition]int64

// positionVersion prefixes an encoded position, so that the format can
// change without misreading an old id.
const positionVersion = "p1."

// String encodes p as an SSE id: "p1." and the base64url (unpadded) text
// "<topic>|<partition>:<offset>,...;<topic>|...", topics and partitions
// sorted. Clients treat it as opaque.
func (p position) String() string {
	byTopic := map[string][]store.TopicPartition{}
	for tp := range p {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp)
	}
	var b strings.Builder
	for i, topic := range slices.Sorted(maps.Keys(byTopic)) {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(topic)
		b.WriteByte('|')
		tps := byTopic[topic]
		slices.SortFunc(tps, func(a, b store.TopicPartition) int { return int(a.Partition - b.Partition) })
		for j, tp := range tps {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(int64(tp.Partition), 10))
			b.WriteByte(':')
			b.WriteString(strconv.FormatInt(p[tp], 10))
		}
	}
	return positionVersion + base64.RawURLEncoding.EncodeToString([]byte(b.String()))
}

// maxPositionLen bounds a Last-Event-ID before it is decoded.
const maxPositionLen = 8 << 10

// parsePosition decodes an id written by position.String. Any other text
// is an error wrapping ErrBadPosition.
func parsePosition(s string) (position, error) {
	if len(s) > maxPositionLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadPosition, maxPositionLen)
	}
	rest, ok := strings.CutPrefix(s, positionVersion)
	if !ok {
		return nil, fmt.Errorf("%w: no %q prefix", ErrBadPosition, positionVersion)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPosition, err)
	}
	p := position{}
	if len(raw) == 0 {
		return p, nil
	}
	for part := range strings.SplitSeq(string(raw), ";") {
		topic, offsets, ok := strings.Cut(part, "|")
		if !ok || topic == "" || offsets == "" {
			return nil, fmt.Errorf("%w: %q is not topic|partition:offset,...", ErrBadPosition, part)
		}
		for po := range strings.SplitSeq(offsets, ",") {
			ps, os, ok := strings.Cut(po, ":")
			partition, perr := strconv.ParseInt(ps, 10, 32)
			offset, oerr := strconv.ParseInt(os, 10, 64)
			if !ok || perr != nil || oerr != nil || partition < 0 || offset < 0 {
				return nil, fmt.Errorf("%w: %q is not partition:offset", ErrBadPosition, po)
			}
			tp := store.TopicPartition{Topic: topic, Partition: int32(partition)}
			if _, dup := p[tp]; dup {
				return nil, fmt.Errorf("%w: %s[%d] twice", ErrBadPosition, topic, partition)
			}
			p[tp] = offset
		}
	}
	return p, nil
}

// advance moves p past offset on tp and reports whether it moved (false:
// the event at offset was already sent).
func (p position) advance(tp store.TopicPartition, offset int64) bool {
	if offset < p[tp] {
		return false
	}
	p[tp] = offset + 1
	return true
}

// ahead reports whether p is past q on some partition.
func (p position) ahead(q position) bool {
	for tp, o := range p {
		if o > q[tp] {
			return true
		}
	}
	return false
}

// merged returns a new position with, per partition, the larger of p and q.
func (p position) merged(q position) position {
	out := maps.Clone(q)
	if out == nil {
		out = position{}
	}
	for tp, o := range p {
		out[tp] = max(out[tp], o)
	}
	return out
}
