package codec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ValueSchemaIDHeader is the record header in which Confluent's serializers (Java, Go
// v2.10+, JavaScript 1.10+) put the value's schema id when configured for header mode,
// leaving the value a bare Avro body. Confluent's deserializers, by default, take the id
// from this header when a record has it and from the value's prefix otherwise; so does
// every Pyrite reader (see Prefixed).
const ValueSchemaIDHeader = "__value_schema_id"

// Magic bytes of a schema id header: an id (as in the value prefix) or a GUID.
const (
	headerMagicID   = 0x00
	headerMagicGUID = 0x01
)

// GUID is a Confluent schema GUID: 16 bytes, shown as a UUID. Confluent's registry derives
// it from the MD5 of the schema (with its references, metadata and rule set).
type GUID [16]byte

// String formats g as a lowercase UUID, as registries and serializers show it.
func (g GUID) String() string { return uuid.UUID(g).String() }

// SchemaRef is the schema a header names: an ID, or a GUID when IsGUID.
type SchemaRef struct {
	ID     int
	GUID   GUID
	IsGUID bool
}

// ParseSchemaIDHeader reads a ValueSchemaIDHeader value: 0x01 and a 16-byte GUID, or 0x00
// and a 4-byte big-endian ID. Anything else (another magic byte, another length) wraps
// ErrBadSchemaIDHeader.
func ParseSchemaIDHeader(b []byte) (SchemaRef, error) {
	switch {
	case len(b) == 17 && b[0] == headerMagicGUID:
		var r SchemaRef
		r.IsGUID = true
		copy(r.GUID[:], b[1:])
		return r, nil
	case len(b) == HeaderSize && b[0] == headerMagicID:
		return SchemaRef{ID: int(binary.BigEndian.Uint32(b[1:]))}, nil
	case len(b) == 0:
		return SchemaRef{}, fmt.Errorf("%w: empty", ErrBadSchemaIDHeader)
	default:
		return SchemaRef{}, fmt.Errorf("%w: %d bytes starting 0x%02x (want 0x01 and a 16-byte GUID, or 0x00 and a 4-byte id)",
			ErrBadSchemaIDHeader, len(b), b[0])
	}
}

// AppendGUIDHeader appends the ValueSchemaIDHeader value for g (0x01, then g) to dst.
func AppendGUIDHeader(dst []byte, g GUID) []byte {
	return append(append(dst, headerMagicGUID), g[:]...)
}

// GUIDResolver is the optional registry method ByGUID uses: the schema ID a GUID has in the
// registry's default context (Confluent's GET /schemas/guids/{guid}/ids). Dial's client has
// it; an unknown GUID is an error with HTTP status 404 or error code 40403.
type GUIDResolver interface {
	SchemaIDByGUID(guid string) (int, error)
}

// ByGUID returns the schema with the given GUID. Unknown GUIDs wrap ErrUnknownSchemaID (and
// are remembered as unknown for the negative TTL); a registry without GUID lookups, one that
// cannot be reached, or ctx ending first wrap ErrRegistryUnavailable.
func (c *Codec) ByGUID(ctx context.Context, g GUID) (*Schema, error) {
	if id, ok := c.guidID.Load(g); ok {
		return c.ByID(ctx, id.(int))
	}
	if until, ok := c.unknownGUID.Load(g); ok && time.Now().Before(until.(time.Time)) {
		return nil, fmt.Errorf("%w: guid %s (cached answer)", ErrUnknownSchemaID, g)
	}
	gr, ok := c.reg.(GUIDResolver)
	if !ok {
		return nil, fmt.Errorf("%w: the registry client cannot look up GUIDs", ErrRegistryUnavailable)
	}
	_, err := c.do(ctx, "guid\x00"+g.String(), func() (*Schema, error) {
		n, err := gr.SchemaIDByGUID(g.String())
		if err != nil {
			err = classify(err, ErrUnknownSchemaID, "schema guid "+g.String())
			if errors.Is(err, ErrUnknownSchemaID) && c.negativeTTL > 0 {
				c.unknownGUID.Store(g, time.Now().Add(c.negativeTTL))
			}
			return nil, err
		}
		if n < 0 {
			return nil, fmt.Errorf("%w: guid %s: registry answered id %d", ErrUnknownSchemaID, g, n)
		}
		c.guidID.Store(g, n)
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	v, _ := c.guidID.Load(g)
	return c.ByID(ctx, v.(int))
}

// Prefixed returns a record value in the prefix framing (0x00, the 4-byte ID, the body),
// honouring the ValueSchemaIDHeader as Confluent's default ("dual") deserializers do: with no
// header (hasHeader false) the value is returned as it is, for SplitFrame and Decode to
// check; with one, the header wins and the whole value is the bare body, returned in a new
// slice behind the ID the header names. A malformed header wraps ErrBadSchemaIDHeader, an
// unknown GUID ErrUnknownSchemaID; ErrRegistryUnavailable is transient.
func (c *Codec) Prefixed(ctx context.Context, value, header []byte, hasHeader bool) ([]byte, error) {
	if !hasHeader {
		return value, nil
	}
	ref, err := ParseSchemaIDHeader(header)
	if err != nil {
		return nil, err
	}
	id := ref.ID
	if ref.IsGUID {
		s, err := c.ByGUID(ctx, ref.GUID)
		if err != nil {
			return nil, err
		}
		id = s.ID
	}
	out := make([]byte, HeaderSize, HeaderSize+len(value))
	putHeader(out, id)
	return append(out, value...), nil
}
