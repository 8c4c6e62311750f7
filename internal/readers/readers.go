package readers

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Topic is where readers are recorded.
const Topic = topology.ReadersTopic

// ErrInvalid is wrapped by every error about a malformed Reader or record.
var ErrInvalid = errors.New("readers: invalid reader")

// Reader is one consumer group's reader schema for one event type.
type Reader struct {
	// Group is the consumer group (or, for an outside service that is no Kafka
	// group, the name it registered under).
	Group string `json:"group"`
	// Type is the event type, e.g. WorkEffort:ProgressUpdated.
	Type string `json:"type"`
	// Subject is the registry subject of the type's schemas.
	Subject string `json:"subject"`
	// Version is the reader schema's version under Subject.
	Version int `json:"version"`
	// Schema is the reader schema's Avro text: checks need no registry lookup,
	// and a reader schema need not be registered at all.
	Schema string `json:"schema"`
	// Instance names the process that recorded it (host and pid for Pyrite's
	// groups, what the caller says for outside services).
	Instance string `json:"instance"`
	// Time is when it was recorded.
	Time time.Time `json:"time"`
}

// Key is the record key: "<group>|<type>". Types never hold "|", so the key is
// unambiguous whatever the group name.
func Key(group, eventType string) string { return group + "|" + eventType }

// Validate returns every problem with r at once, each wrapping ErrInvalid.
func (r Reader) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if r.Group == "" {
		bad("group is empty")
	}
	if r.Type == "" || strings.Contains(r.Type, "|") {
		bad("type %q is empty or holds \"|\"", r.Type)
	}
	if r.Subject == "" {
		bad("subject is empty")
	}
	if r.Version < 1 {
		bad("version %d is not positive", r.Version)
	}
	if strings.TrimSpace(r.Schema) == "" {
		bad("schema is empty")
	}
	return errors.Join(errs...)
}

// Record is r as a record for Topic.
func (r Reader) Record() (*kgo.Record, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: Topic, Key: []byte(Key(r.Group, r.Type)), Value: v}, nil
}

// Parse reads a record of Topic. A tombstone (nil value) gives ok false and no error.
func Parse(key, value []byte) (r Reader, ok bool, err error) {
	if value == nil {
		return Reader{}, false, nil
	}
	if err := json.Unmarshal(value, &r); err != nil {
		return Reader{}, false, fmt.Errorf("%w: %s: %v", ErrInvalid, key, err)
	}
	if err := r.Validate(); err != nil {
		return Reader{}, false, fmt.Errorf("%s: %w", key, err)
	}
	if Key(r.Group, r.Type) != string(key) {
		return Reader{}, false, fmt.Errorf("%w: key %q does not match group %q and type %q", ErrInvalid, key, r.Group, r.Type)
	}
	return r, true, nil
}

// sortReaders orders readers by group, then type.
func sortReaders(rs []Reader) {
	slices.SortFunc(rs, func(a, b Reader) int {
		return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.Type, b.Type))
	})
}
