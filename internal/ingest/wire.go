package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"mime"
	"net/http"
	"strings"
)

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

func asMaxBytes(err error, target **http.MaxBytesError) bool { return errors.As(err, target) }

// validTraceparent reports whether tp is a W3C traceparent of version 00
// with non-zero trace and parent ids.
func validTraceparent(tp string) bool {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] != "00" {
		return false
	}
	trace, parent, flags := tp[3:35], tp[36:52], tp[53:]
	for _, part := range []string{trace, parent, flags} {
		if _, err := hex.DecodeString(part); err != nil || strings.ToLower(part) != part {
			return false
		}
	}
	return strings.Trim(trace, "0") != "" && strings.Trim(parent, "0") != ""
}

// newTraceparent starts a new sampled trace.
func newTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}
