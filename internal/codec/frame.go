package codec

import (
	"encoding/binary"
	"fmt"
)

// HeaderSize is the length of the Confluent wire-format header: the magic byte 0x00 and the
// 4-byte big-endian schema ID.
const HeaderSize = 5

const magic = 0x00

// SplitFrame splits a Confluent-framed value into its schema ID and Avro body. The body
// aliases data. A value shorter than HeaderSize wraps ErrShortValue; one whose first byte is
// not 0x00 wraps ErrBadMagic. IDs are unsigned 32-bit on the wire.
func SplitFrame(data []byte) (id int, body []byte, err error) {
	if len(data) < HeaderSize {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrShortValue, len(data))
	}
	if data[0] != magic {
		return 0, nil, fmt.Errorf("%w: 0x%02x", ErrBadMagic, data[0])
	}
	return int(binary.BigEndian.Uint32(data[1:HeaderSize])), data[HeaderSize:], nil
}

// AppendHeader appends the wire-format header for schema id to dst.
func AppendHeader(dst []byte, id int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, magic), uint32(id))
}

// putHeader writes the wire-format header for schema id into b[:HeaderSize].
func putHeader(b []byte, id int) {
	b[0] = magic
	binary.BigEndian.PutUint32(b[1:HeaderSize], uint32(id))
}
