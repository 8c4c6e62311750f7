package codec_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

func TestSplitFrame(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		wantID   int
		wantBody []byte
		wantErr  error
	}{
		{name: "nil", data: nil, wantErr: codec.ErrShortValue},
		{name: "four bytes", data: []byte{0, 0, 0, 1}, wantErr: codec.ErrShortValue},
		{name: "bad magic", data: []byte{1, 0, 0, 0, 1, 2}, wantErr: codec.ErrBadMagic},
		{name: "header only", data: []byte{0, 0, 0, 0, 7}, wantID: 7, wantBody: []byte{}},
		{name: "body", data: []byte{0, 0, 0, 1, 2, 0xa, 0xb}, wantID: 258, wantBody: []byte{0xa, 0xb}},
		{name: "largest id", data: []byte{0, 0xff, 0xff, 0xff, 0xff}, wantID: 1<<32 - 1, wantBody: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, body, err := codec.SplitFrame(tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if id != tt.wantID || !bytes.Equal(body, tt.wantBody) {
				t.Errorf("SplitFrame = %d, %x; want %d, %x", id, body, tt.wantID, tt.wantBody)
			}
			if h := codec.AppendHeader(nil, id); !bytes.Equal(h, tt.data[:codec.HeaderSize]) {
				t.Errorf("AppendHeader(%d) = %x, want %x", id, h, tt.data[:codec.HeaderSize])
			}
		})
	}
}
