package codec

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/riferrei/srclient"
)

// RegistryClient is an srclient client plus the GUID lookup srclient lacks
// (GUIDResolver). It satisfies Registry.
type RegistryClient struct {
	*srclient.SchemaRegistryClient
	base string
	http *http.Client

	mu                   sync.Mutex
	user, password, bear string
}

// Client returns a client for the Confluent-compatible registry at url with srclient's own
// cache off (a Codec caches what can be cached, and srclient would keep the first "latest"
// and version listing forever). Each registry call times out after 10 seconds.
func Client(url string) *RegistryClient {
	hc := &http.Client{Timeout: 10 * time.Second}
	rc := srclient.NewSchemaRegistryClient(url, srclient.WithClient(hc))
	rc.CachingEnabled(false)
	return &RegistryClient{SchemaRegistryClient: rc, base: strings.TrimRight(url, "/"), http: hc}
}

// SetCredentials sets HTTP Basic credentials for every call, GUID lookups included.
func (c *RegistryClient) SetCredentials(user, password string) {
	c.SchemaRegistryClient.SetCredentials(user, password)
	c.mu.Lock()
	c.user, c.password = user, password
	c.mu.Unlock()
}

// SetBearerToken sets a bearer token for every call, GUID lookups included.
func (c *RegistryClient) SetBearerToken(token string) {
	c.SchemaRegistryClient.SetBearerToken(token)
	c.mu.Lock()
	c.bear = token
	c.mu.Unlock()
}

// SchemaIDByGUID asks GET /schemas/guids/{guid}/ids for the GUID's id in the default
// context. An unknown GUID is an srclient.Error with code 40403.
func (c *RegistryClient) SchemaIDByGUID(guid string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+"/schemas/guids/"+url.PathEscape(guid)+"/ids", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json")
	c.mu.Lock()
	switch {
	case c.bear != "":
		req.Header.Set("Authorization", "Bearer "+c.bear)
	case c.user != "":
		req.SetBasicAuth(c.user, c.password)
	}
	c.mu.Unlock()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		var e srclient.Error
		if json.Unmarshal(body, &e) == nil && e.Code != 0 {
			return 0, e
		}
		return 0, fmt.Errorf("%s", resp.Status) // "404 Not Found": classify reads the status
	}
	var ids []struct {
		Context string `json:"context"`
		ID      *int   `json:"id"`
	}
	if err := json.Unmarshal(body, &ids); err != nil {
		return 0, fmt.Errorf("schema guid %s: unreadable answer: %w", guid, err)
	}
	for _, e := range ids {
		if (e.Context == "." || e.Context == "") && e.ID != nil {
			return *e.ID, nil
		}
	}
	return 0, srclient.Error{Code: 40403, Message: "Schema " + guid + " not found in the default context"}
}

// Dial returns a Codec on the registry at url, through Client.
func Dial(url string, opts ...Option) *Codec {
	return New(Client(url), opts...)
}
