package codec

import (
	"net/http"
	"time"

	"github.com/riferrei/srclient"
)

// Dial returns a Codec on the Confluent-compatible registry at url, through
// srclient with srclient's own cache off (the Codec caches what can be
// cached, and srclient would otherwise keep the first "latest" forever).
// Each registry call times out after 10 seconds.
func Dial(url string, opts ...Option) *Codec {
	rc := srclient.NewSchemaRegistryClient(url, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	rc.CachingEnabled(false)
	return New(rc, opts...)
}
