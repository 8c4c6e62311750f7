package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Key types of Confluent's _schemas topic. Keys are JSON objects
// {"keytype": ..., "subject": ..., "version": ..., "magic": ...}; values are
// JSON objects whose shape depends on the key type; a null value is a
// tombstone (permanent delete of that key).
const (
	keyTypeSchema        = "SCHEMA"
	keyTypeConfig        = "CONFIG"
	keyTypeMode          = "MODE"
	keyTypeNoop          = "NOOP"
	keyTypeDeleteSubject = "DELETE_SUBJECT"
	keyTypeClearSubject  = "CLEAR_SUBJECT"
)

// Reference is a Confluent schema reference: the named type Name is defined
// by version Version of subject Subject.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// recordKey is the key of every _schemas record. Field order matches
// Confluent's serializer; Subject is omitted for global CONFIG and MODE keys
// and Version for every key type but SCHEMA.
type recordKey struct {
	KeyType string  `json:"keytype"`
	Subject *string `json:"subject,omitempty"`
	Version *int    `json:"version,omitempty"`
	Magic   int     `json:"magic"`
}

// schemaValue is the value of a SCHEMA record. SchemaType is omitted for
// AVRO, which is what readers assume when it is absent. MD5 (base64 of the
// 16-byte GUID) is written by Confluent's registry only when a schema
// arrives with its GUID (imports); like Confluent, Pyrite derives the GUID
// from the record's content when it is absent and never writes it.
type schemaValue struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	MD5        string      `json:"md5,omitempty"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Metadata   *Metadata   `json:"metadata,omitempty"`
	RuleSet    *RuleSet    `json:"ruleSet,omitempty"`
	Schema     string      `json:"schema"`
	Deleted    bool        `json:"deleted"`
}

type configValue struct {
	CompatibilityLevel string `json:"compatibilityLevel,omitempty"`
}

type modeValue struct {
	Mode string `json:"mode,omitempty"`
}

type deleteSubjectValue struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

type clearSubjectValue struct {
	Subject string `json:"subject,omitempty"`
}

// marshalJSON encodes v compactly without HTML escaping, as Jackson does.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func subjectPtr(subject string) *string {
	if subject == "" {
		return nil
	}
	return &subject
}

func schemaKeyBytes(subject string, version int) []byte {
	b, _ := marshalJSON(recordKey{KeyType: keyTypeSchema, Subject: &subject, Version: &version, Magic: 1})
	return b
}

// subjectKeyBytes encodes a CONFIG, MODE, DELETE_SUBJECT or CLEAR_SUBJECT
// key; an empty subject means the global key.
func subjectKeyBytes(keyType, subject string) []byte {
	b, _ := marshalJSON(recordKey{KeyType: keyType, Subject: subjectPtr(subject)})
	return b
}

func valueBytes(v any) []byte {
	b, _ := marshalJSON(v)
	return b
}

var errBadKey = errors.New("bad _schemas key")

// decodeKey parses a record key. It never panics; unknown key types are
// returned as they are so the caller can skip them.
func decodeKey(b []byte) (recordKey, error) {
	var k recordKey
	if len(b) == 0 {
		return k, fmt.Errorf("%w: empty", errBadKey)
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("%w: %v", errBadKey, err)
	}
	if k.KeyType == "" {
		return k, fmt.Errorf("%w: no keytype", errBadKey)
	}
	return k, nil
}
