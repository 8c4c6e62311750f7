package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every Standard Webhooks secret; the rest is the base64 key.
const SecretPrefix = "whsec_"

// Key lengths the Standard Webhooks specification allows.
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// Sentinel errors.
var (
	// ErrBadSecret means a secret is not "whsec_" followed by the base64 of a 24 to 64 byte key.
	ErrBadSecret = errors.New("webhook: bad secret")
	// ErrBadSignature means a request's signature headers are missing, malformed, stale or do
	// not match.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrBadConfig means a subscription list cannot be used.
	ErrBadConfig = errors.New("webhook: bad subscription config")
)

// DecodeSecret returns the HMAC key of a "whsec_<base64>" secret.
func DecodeSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %s", ErrBadSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: key is not base64", ErrBadSecret)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrBadSecret, len(key), minKeyLen, maxKeyLen)
	}
	return key, nil
}

// Sign returns the webhook-signature value of a message: "v1," and the base64 HMAC-SHA256,
// under key, of "<id>.<unix seconds>.<body>".
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a received message as a Standard Webhooks receiver does: webhook-id and
// webhook-timestamp present, the timestamp within tolerance of now, and one of the
// space-separated v1 signatures matching (compared in constant time). Errors wrap
// ErrBadSignature.
func Verify(key []byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s", ErrBadSignature, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrBadSignature, tsText)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %s is more than %s from now", ErrBadSignature, ts.UTC().Format(time.RFC3339), tolerance)
	}
	want := []byte(Sign(key, id, ts, body))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrBadSignature)
}
