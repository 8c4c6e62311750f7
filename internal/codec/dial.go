package codec

import (
	"net/http"
	"time"

	"github.com/riferrei/srclient"
)

// Client returns an srclient client for the Confluent-compatible registry at
// url with srclient's own cache off (a Codec caches what can be cached, and
// srclient would keep the first "latest" and version listing forever). Each
// registry call times out after 10 seconds.
func Client(url string) *srclient.SchemaRegistryClient {
	rc := srclient.NewSchemaRegistryClient(url, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	rc.CachingEnabled(false)
	return rc
}

// Dial returns a Codec on the registry at url, through Client.
func Dial(url string, opts ...Option) *Codec {
	return New(Client(url), opts...)
}
