package registry

import (
	"encoding/json"
	"strings"
	"testing"
)

const (
	userV1          = `{"type":"record","name":"User","namespace":"pyrite.test","fields":[{"name":"id","type":"string"}]}`
	userV1Reordered = `{ "fields": [ {"type": "string", "name": "id"} ], "name": "pyrite.test.User", "type": "record" }`
	userV1Doc       = `{"type":"record","name":"User","namespace":"pyrite.test","doc":"A user.","fields":[{"name":"id","type":"string"}]}`
	userNoDefault   = `{"type":"record","name":"User","namespace":"pyrite.test","fields":[{"name":"id","type":"string"},{"name":"age","type":"int"}]}`
	userV2          = `{"type":"record","name":"User","namespace":"pyrite.test","fields":[{"name":"id","type":"string"},{"name":"email","type":"string","default":""}]}`
	address         = `{"type":"record","name":"Address","namespace":"pyrite.test","fields":[{"name":"street","type":"string"}]}`
	person          = `{"type":"record","name":"Person","namespace":"pyrite.test","fields":[{"name":"home","type":"Address"}]}`
	imported        = `{"type":"record","name":"Imported","namespace":"pyrite.test","fields":[{"name":"a","type":"long"}]}`
	importedV2      = `{"type":"record","name":"Imported","namespace":"pyrite.test","fields":[{"name":"a","type":"long"},{"name":"b","type":"long","default":0}]}`
	importedV3      = `{"type":"record","name":"Imported","namespace":"pyrite.test","fields":[{"name":"a","type":"long"},{"name":"b","type":"long","default":0},{"name":"c","type":"string","default":"x"}]}`
	otherSchema     = `{"type":"enum","name":"Color","namespace":"pyrite.test","symbols":["RED","GREEN"]}`
	toNormalize     = `{"namespace":"pyrite.n","type":"record","name":"N","fields":[{"type":{"type":"string"},"name":"s","order":"ascending"}]}`
	personRefs      = `"references":[{"name":"pyrite.test.Address","subject":"addr","version":1}]`
)

// sb builds a request body {"schema": schema, extra...}.
func sb(schema string, extra ...string) string {
	b, _ := json.Marshal(schema)
	return "{" + strings.Join(append([]string{`"schema":` + string(b)}, extra...), ",") + "}"
}

// step is one request against a registry and what must come back: the
// status, the Confluent error_code for errors, and the exact body or
// substrings of it.
type step struct {
	name     string
	method   string
	path     string
	body     string
	ctype    string // default: Confluent's v1 type
	status   int
	code     int
	want     string
	contains []string
}

func runSteps(t *testing.T, tr *testRegistry, steps []step) {
	t.Helper()
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			ctype := s.ctype
			if ctype == "" {
				ctype = mediaV1
			}
			if ctype == "none" {
				ctype = ""
			}
			r := doRequest(t, tr.srv.URL, s.method, s.path, s.body, ctype)
			if r.status != s.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", s.method, s.path, r.status, s.status, r.body)
			}
			if s.code != 0 && r.errorCode() != s.code {
				t.Errorf("error_code %d, want %d; body %s", r.errorCode(), s.code, r.body)
			}
			if s.want != "" && r.body != s.want {
				t.Errorf("body\n got %s\nwant %s", r.body, s.want)
			}
			for _, c := range s.contains {
				if !strings.Contains(r.body, c) {
					t.Errorf("body %s does not contain %q", r.body, c)
				}
			}
			if r.status != 405 && !strings.HasPrefix(r.ctype, mediaV1) {
				t.Errorf("content type %q, want %s", r.ctype, mediaV1)
			}
		})
		if !ok {
			t.FailNow() // later steps depend on earlier ones
		}
	}
}

func TestAPI(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	userV1JSON, _ := json.Marshal(userV1)
	userV2JSON, _ := json.Marshal(userV2)

	runSteps(t, tr, []step{
		// Empty registry.
		{name: "root", method: "GET", path: "/", status: 200, want: `{}`},
		{name: "schema types", method: "GET", path: "/schemas/types", status: 200, want: `["AVRO"]`},
		{name: "no subjects", method: "GET", path: "/subjects", status: 200, want: `[]`},
		{name: "default config", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"BACKWARD"}`},
		{name: "default mode", method: "GET", path: "/mode", status: 200, want: `{"mode":"READWRITE"}`},

		// Registering, and the same schema again.
		{name: "register v1", method: "POST", path: "/subjects/user/versions", body: sb(userV1), status: 200, contains: []string{`{"id":1,`}},
		{name: "register v1 again creates nothing", method: "POST", path: "/subjects/user/versions", body: sb(userV1), status: 200, contains: []string{`{"id":1,`}},
		{name: "reformatted v1 is the same schema", method: "POST", path: "/subjects/user/versions", body: sb(userV1Reordered, `"schemaType":"AVRO"`), status: 200, contains: []string{`{"id":1,`}},
		{name: "still one version", method: "GET", path: "/subjects/user/versions", status: 200, want: `[1]`},
		{name: "same schema in another subject shares the id", method: "POST", path: "/subjects/user-copy/versions", body: sb(userV1), status: 200, contains: []string{`{"id":1,`}},
		{name: "another subject has its own version 1", method: "GET", path: "/subjects/user-copy/versions/1", status: 200,
			want: `{"subject":"user-copy","version":1,"id":1,"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "a doc makes a new schema although the canonical form is equal", method: "POST", path: "/subjects/user/versions", body: sb(userV1Doc), status: 200, contains: []string{`{"id":2,`}},
		{name: "incompatible under BACKWARD", method: "POST", path: "/subjects/user/versions", body: sb(userNoDefault), status: 409, code: 40901,
			contains: []string{`incompatible with an earlier schema for subject \"user\"`, `age`, `BACKWARD`}},
		{name: "compatible v2", method: "POST", path: "/subjects/user/versions", body: sb(userV2), status: 200, contains: []string{`{"id":3,`}},
		{name: "versions", method: "GET", path: "/subjects/user/versions", status: 200, want: `[1,2,3]`},
		{name: "latest", method: "GET", path: "/subjects/user/versions/latest", status: 200,
			want: `{"subject":"user","version":3,"id":3,"guid":"1d64b124-91aa-394f-6383-dddfd82a0967","schema":` + string(userV2JSON) + `}`},
		{name: "latest as -1", method: "GET", path: "/subjects/user/versions/-1", status: 200, contains: []string{`"version":3`}},
		{name: "raw schema of a version", method: "GET", path: "/subjects/user/versions/2/schema", status: 200, want: userV1Doc},
		{name: "subjects", method: "GET", path: "/subjects", status: 200, want: `["user","user-copy"]`},
		{name: "subjects by prefix", method: "GET", path: "/subjects?subjectPrefix=user-", status: 200, want: `["user-copy"]`},

		// Unknown things and bad versions.
		{name: "version 0 is invalid", method: "GET", path: "/subjects/user/versions/0", status: 422, code: 42202},
		{name: "version abc is invalid", method: "GET", path: "/subjects/user/versions/abc", status: 422, code: 42202},
		{name: "version out of int32", method: "GET", path: "/subjects/user/versions/4294967296", status: 422, code: 42202},
		{name: "unknown version", method: "GET", path: "/subjects/user/versions/9", status: 404, code: 40402},
		{name: "unknown subject versions", method: "GET", path: "/subjects/nobody/versions", status: 404, code: 40401},
		{name: "unknown subject version", method: "GET", path: "/subjects/nobody/versions/1", status: 404, code: 40401},

		// Lookup.
		{name: "lookup", method: "POST", path: "/subjects/user", body: sb(userV1Reordered), status: 200,
			want: `{"subject":"user","version":1,"id":1,"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "lookup unknown schema", method: "POST", path: "/subjects/user", body: sb(otherSchema), status: 404, code: 40403},
		{name: "lookup unknown subject", method: "POST", path: "/subjects/nobody", body: sb(userV1), status: 404, code: 40401},
		{name: "lookup invalid schema", method: "POST", path: "/subjects/user", body: sb(`{"type":"record"}`), status: 422, code: 42201},

		// Schemas by id.
		{name: "schema by id", method: "GET", path: "/schemas/ids/1", status: 200, want: `{"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "schema by id restricted to a subject", method: "GET", path: "/schemas/ids/1?subject=user-copy", status: 200},
		{name: "schema by id, other subject falls back (Confluent's default context)", method: "GET", path: "/schemas/ids/1?subject=nobody", status: 200, contains: []string{`"subject":"user"`}},
		{name: "raw schema by id", method: "GET", path: "/schemas/ids/3/schema", status: 200, want: userV2},
		{name: "subjects of an id", method: "GET", path: "/schemas/ids/1/subjects", status: 200, want: `["user","user-copy"]`},
		{name: "versions of an id", method: "GET", path: "/schemas/ids/1/versions", status: 200,
			want: `[{"subject":"user","version":1},{"subject":"user-copy","version":1}]`},
		{name: "unknown id", method: "GET", path: "/schemas/ids/99", status: 404, code: 40403},
		{name: "non-numeric id", method: "GET", path: "/schemas/ids/abc", status: 404, code: 40403},
		{name: "unknown id subjects", method: "GET", path: "/schemas/ids/99/subjects", status: 404, code: 40403},
		{name: "unknown id versions", method: "GET", path: "/schemas/ids/99/versions", status: 404, code: 40403},
		{name: "all schemas, latest only", method: "GET", path: "/schemas?latestOnly=true", status: 200,
			contains: []string{`"subject":"user","version":3,"id":3`, `"subject":"user-copy","version":1,"id":1`}},

		// Compatibility checks.
		{name: "incompatible with latest", method: "POST", path: "/compatibility/subjects/user/versions/latest", body: sb(userNoDefault), status: 200, want: `{"is_compatible":false}`},
		{name: "incompatible, verbose", method: "POST", path: "/compatibility/subjects/user/versions/latest?verbose=true", body: sb(userNoDefault), status: 200,
			contains: []string{`"is_compatible":false`, `"messages":[`, `age`}},
		{name: "compatible with latest", method: "POST", path: "/compatibility/subjects/user/versions/latest", body: sb(userV2), status: 200, want: `{"is_compatible":true}`},
		{name: "compatible, verbose", method: "POST", path: "/compatibility/subjects/user/versions/3?verbose=true", body: sb(userV2), status: 200, want: `{"is_compatible":true,"messages":[]}`},
		{name: "compatibility against all versions", method: "POST", path: "/compatibility/subjects/user/versions", body: sb(userNoDefault), status: 200, want: `{"is_compatible":false}`},
		{name: "compatibility, unknown version", method: "POST", path: "/compatibility/subjects/user/versions/7", body: sb(userV2), status: 404, code: 40402},
		{name: "compatibility, invalid version", method: "POST", path: "/compatibility/subjects/user/versions/x", body: sb(userV2), status: 422, code: 42202},
		{name: "compatibility, new subject", method: "POST", path: "/compatibility/subjects/nobody/versions/latest", body: sb(userV1), status: 200, want: `{"is_compatible":true}`},
		{name: "compatibility, invalid schema", method: "POST", path: "/compatibility/subjects/user/versions/latest", body: sb(`{"type":"nope"}`), status: 422, code: 42201},
		{name: "compatibility, invalid schema, verbose", method: "POST", path: "/compatibility/subjects/user/versions/latest?verbose=true", body: sb(`{"type":"nope"}`), status: 200,
			contains: []string{`"is_compatible":false`, `"messages":["Invalid schema`}},

		// Malformed input.
		{name: "malformed JSON", method: "POST", path: "/subjects/user/versions", body: `{"schema":`, status: 422, code: 422},
		{name: "empty body", method: "POST", path: "/subjects/user/versions", status: 422, code: 422},
		{name: "null body", method: "POST", path: "/subjects/user/versions", body: `null`, status: 422, code: 422},
		{name: "trailing data", method: "POST", path: "/subjects/user/versions", body: sb(userV1) + `{}`, status: 422, code: 422},
		{name: "schema of the wrong JSON type", method: "POST", path: "/subjects/user/versions", body: `{"schema":5}`, status: 422, code: 422},
		{name: "no schema", method: "POST", path: "/subjects/user/versions", body: `{}`, status: 422, code: 42201},
		{name: "invalid Avro", method: "POST", path: "/subjects/user/versions", body: sb(`{"type":"nope"}`), status: 422, code: 42201},
		{name: "schema that is not JSON", method: "POST", path: "/subjects/user/versions", body: sb(`not json`), status: 422, code: 42201},
		{name: "bad default", method: "POST", path: "/subjects/user/versions", body: sb(`{"type":"record","name":"D","fields":[{"name":"a","type":"int","default":"x"}]}`), status: 422, code: 42201},
		{name: "other schema type", method: "POST", path: "/subjects/user/versions", body: sb(`syntax = "proto3";`, `"schemaType":"PROTOBUF"`), status: 422, code: 42201},
		{name: "control character in subject", method: "POST", path: "/subjects/a%01b/versions", body: sb(userV1), status: 422, code: 42208},
		{name: "unsupported content type", method: "POST", path: "/subjects/user/versions", body: sb(userV1), ctype: "text/plain", status: 415, code: 415},
		{name: "plain JSON content type", method: "POST", path: "/subjects/user/versions", body: sb(userV1), ctype: "application/json; charset=utf-8", status: 200, contains: []string{`{"id":1,`}},
		{name: "unversioned content type", method: "POST", path: "/subjects/user/versions", body: sb(userV1), ctype: mediaDefault, status: 200, contains: []string{`{"id":1,`}},
		{name: "octet-stream content type", method: "POST", path: "/subjects/user/versions", body: sb(userV1), ctype: mediaOctet, status: 200, contains: []string{`{"id":1,`}},
		{name: "no content type", method: "POST", path: "/subjects/user/versions", body: sb(userV1), ctype: "none", status: 200, contains: []string{`{"id":1,`}},
		{name: "unknown path", method: "GET", path: "/nope", status: 404, code: 404},
		{name: "unknown method", method: "PATCH", path: "/subjects", status: 405, code: 405},
		{name: "explicit id outside IMPORT mode", method: "POST", path: "/subjects/user/versions", body: sb(userV2, `"id":42`), status: 422, code: 42205},

		// Config.
		{name: "set global FULL", method: "PUT", path: "/config", body: `{"compatibility":"FULL"}`, status: 200, want: `{"compatibility":"FULL"}`},
		{name: "global is FULL", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"FULL"}`},
		{name: "invalid level", method: "PUT", path: "/config", body: `{"compatibility":"SIDEWAYS"}`, status: 422, code: 42203},
		{name: "malformed config body", method: "PUT", path: "/config", body: `{`, status: 422, code: 422},
		{name: "subject level, lower case", method: "PUT", path: "/config/user", body: `{"compatibility":"none"}`, status: 200, want: `{"compatibility":"NONE"}`},
		{name: "subject level", method: "GET", path: "/config/user", status: 200, want: `{"compatibilityLevel":"NONE"}`},
		{name: "subject without its own level", method: "GET", path: "/config/user-copy", status: 404, code: 40408},
		{name: "subject level defaulting to global", method: "GET", path: "/config/user-copy?defaultToGlobal=true", status: 200, want: `{"compatibilityLevel":"FULL"}`},
		{name: "NONE lets anything in", method: "POST", path: "/subjects/user/versions", body: sb(userNoDefault), status: 200, contains: []string{`{"id":4,`}},
		{name: "delete subject level", method: "DELETE", path: "/config/user", status: 200, want: `{"compatibilityLevel":"NONE"}`},
		{name: "subject level gone", method: "GET", path: "/config/user", status: 404, code: 40408},
		{name: "delete subject level again", method: "DELETE", path: "/config/user", status: 404, code: 40401},
		{name: "delete global level", method: "DELETE", path: "/config", status: 200, want: `{"compatibilityLevel":"FULL"}`},
		{name: "global back to default", method: "GET", path: "/config", status: 200, want: `{"compatibilityLevel":"BACKWARD"}`},

		// Mode.
		{name: "invalid mode", method: "PUT", path: "/mode", body: `{"mode":"SOMETIMES"}`, status: 422, code: 42204},
		{name: "missing mode", method: "PUT", path: "/mode", body: `{}`, status: 422, code: 42204},
		{name: "subject read-only", method: "PUT", path: "/mode/user", body: `{"mode":"READONLY"}`, status: 200, want: `{"mode":"READONLY"}`},
		{name: "subject mode", method: "GET", path: "/mode/user", status: 200, want: `{"mode":"READONLY"}`},
		{name: "subject without its own mode", method: "GET", path: "/mode/user-copy", status: 404, code: 40409},
		{name: "subject mode defaulting to global", method: "GET", path: "/mode/user-copy?defaultToGlobal=true", status: 200, want: `{"mode":"READWRITE"}`},
		{name: "no register when read-only", method: "POST", path: "/subjects/user/versions", body: sb(userV2), status: 422, code: 42205},
		{name: "no delete when read-only", method: "DELETE", path: "/subjects/user/versions/1", status: 422, code: 42205},
		{name: "no config change when read-only", method: "PUT", path: "/config/user", body: `{"compatibility":"FULL"}`, status: 422, code: 42205},
		{name: "reads still work when read-only", method: "GET", path: "/subjects/user/versions/1", status: 200},
		{name: "delete subject mode", method: "DELETE", path: "/mode/user", status: 200, want: `{"mode":"READONLY"}`},
		{name: "delete subject mode again", method: "DELETE", path: "/mode/user", status: 404, code: 40401},

		// Soft and hard deletes of versions.
		{name: "permanent delete before soft delete", method: "DELETE", path: "/subjects/user/versions/1?permanent=true", status: 404, code: 40407},
		{name: "soft delete version 1", method: "DELETE", path: "/subjects/user/versions/1", status: 200, want: `1`},
		{name: "soft delete version 1 again", method: "DELETE", path: "/subjects/user/versions/1", status: 404, code: 40406},
		{name: "soft-deleted version is gone", method: "GET", path: "/subjects/user/versions/1", status: 404, code: 40402},
		{name: "soft-deleted version with deleted=true", method: "GET", path: "/subjects/user/versions/1?deleted=true", status: 200, contains: []string{`"version":1`}},
		{name: "live versions", method: "GET", path: "/subjects/user/versions", status: 200, want: `[2,3,4]`},
		{name: "versions with deleted", method: "GET", path: "/subjects/user/versions?deleted=true", status: 200, want: `[1,2,3,4]`},
		{name: "deleted versions only", method: "GET", path: "/subjects/user/versions?deletedOnly=true", status: 200, want: `[1]`},
		{name: "deleted as negative", method: "GET", path: "/subjects/user/versions?deletedAsNegative=true", status: 200, want: `[-1,2,3,4]`},
		{name: "id of a soft-deleted version still resolves", method: "GET", path: "/schemas/ids/1/versions?deleted=true", status: 200,
			want: `[{"subject":"user","version":1},{"subject":"user-copy","version":1}]`},
		{name: "hard delete version 1", method: "DELETE", path: "/subjects/user/versions/1?permanent=true", status: 200, want: `1`},
		{name: "hard-deleted version", method: "DELETE", path: "/subjects/user/versions/1", status: 404, code: 40402},
		{name: "unknown version delete", method: "DELETE", path: "/subjects/user/versions/77", status: 404, code: 40402},
		{name: "invalid version delete", method: "DELETE", path: "/subjects/user/versions/zero", status: 422, code: 42202},
		{name: "unknown subject version delete", method: "DELETE", path: "/subjects/nobody/versions/1", status: 404, code: 40401},

		// Soft and hard deletes of subjects.
		{name: "permanent subject delete before soft delete", method: "DELETE", path: "/subjects/user?permanent=true", status: 404, code: 40405},
		{name: "soft delete subject", method: "DELETE", path: "/subjects/user", status: 200, want: `[2,3,4]`},
		{name: "soft delete subject again", method: "DELETE", path: "/subjects/user", status: 404, code: 40404},
		{name: "soft-deleted subject not listed", method: "GET", path: "/subjects", status: 200, want: `["user-copy"]`},
		{name: "soft-deleted subject listed with deleted", method: "GET", path: "/subjects?deleted=true", status: 200, want: `["user","user-copy"]`},
		{name: "soft-deleted subject only", method: "GET", path: "/subjects?deletedOnly=true", status: 200, want: `["user"]`},
		{name: "soft-deleted subject versions", method: "GET", path: "/subjects/user/versions", status: 404, code: 40401},
		{name: "lookup in soft-deleted subject", method: "POST", path: "/subjects/user", body: sb(userV2), status: 404, code: 40401},
		{name: "lookup in soft-deleted subject with deleted", method: "POST", path: "/subjects/user?deleted=true", body: sb(userV2), status: 200, contains: []string{`"version":3`, `"id":3`}},
		{name: "hard delete subject", method: "DELETE", path: "/subjects/user?permanent=true", status: 200, want: `[2,3,4]`},
		{name: "hard-deleted subject", method: "GET", path: "/subjects?deleted=true", status: 200, want: `["user-copy"]`},
		{name: "hard-deleted subject delete", method: "DELETE", path: "/subjects/user", status: 404, code: 40401},
		{name: "id only the hard-deleted subject used", method: "GET", path: "/schemas/ids/3", status: 404, code: 40403},
		{name: "id another subject still uses", method: "GET", path: "/schemas/ids/1", status: 200},
		{name: "subject starts again at version 1", method: "POST", path: "/subjects/user/versions", body: sb(userV1), status: 200, contains: []string{`{"id":1,`}},
		{name: "new subject version 1", method: "GET", path: "/subjects/user/versions", status: 200, want: `[1]`},

		// References.
		{name: "register a referenced type", method: "POST", path: "/subjects/addr/versions", body: sb(address), status: 200, contains: []string{`{"id":5,`}},
		{name: "register with a reference", method: "POST", path: "/subjects/person/versions", body: sb(person, personRefs), status: 200, contains: []string{`{"id":6,`}},
		{name: "version shows its references", method: "GET", path: "/subjects/person/versions/1", status: 200,
			contains: []string{`"references":[{"name":"pyrite.test.Address","subject":"addr","version":1}]`}},
		{name: "id shows its references", method: "GET", path: "/schemas/ids/6", status: 200, contains: []string{`"references":[{"name":"pyrite.test.Address"`}},
		{name: "referenced by", method: "GET", path: "/subjects/addr/versions/1/referencedby", status: 200, want: `[6]`},
		{name: "not referenced", method: "GET", path: "/subjects/person/versions/1/referencedby", status: 200, want: `[]`},
		{name: "lookup with a reference", method: "POST", path: "/subjects/person", body: sb(person, personRefs), status: 200, contains: []string{`"id":6`}},
		{name: "without its reference the schema is invalid", method: "POST", path: "/subjects/person2/versions", body: sb(person), status: 422, code: 42201},
		{name: "missing reference", method: "POST", path: "/subjects/person2/versions", body: sb(person, `"references":[{"name":"pyrite.test.Address","subject":"nope","version":1}]`), status: 422, code: 42201},
		{name: "reference to latest", method: "POST", path: "/subjects/person2/versions", body: sb(person, `"references":[{"name":"pyrite.test.Address","subject":"addr","version":-1}]`), status: 200, contains: []string{`{"id":6,`}},
		{name: "referenced version cannot be deleted", method: "DELETE", path: "/subjects/addr/versions/1", status: 422, code: 42206},
		{name: "referenced subject cannot be deleted", method: "DELETE", path: "/subjects/addr", status: 422, code: 42206},
		{name: "soft delete one referrer", method: "DELETE", path: "/subjects/person/versions/1", status: 200, want: `1`},
		{name: "soft delete the other referrer", method: "DELETE", path: "/subjects/person2", status: 200, want: `[1]`},
		{name: "soft-deleted referrers do not count", method: "GET", path: "/subjects/addr/versions/1/referencedby", status: 200, want: `[]`},
		{name: "soft-deleted referrers with deleted", method: "GET", path: "/subjects/addr/versions/1/referencedby?deleted=true", status: 200, want: `[6]`},
		{name: "soft delete the referenced version", method: "DELETE", path: "/subjects/addr/versions/1", status: 200, want: `1`},
		{name: "soft-deleted referrer blocks a hard delete", method: "DELETE", path: "/subjects/addr/versions/1?permanent=true", status: 422, code: 42206},

		// IMPORT mode.
		{name: "IMPORT refused while subjects exist", method: "PUT", path: "/mode", body: `{"mode":"IMPORT"}`, status: 422, code: 42205},
		{name: "IMPORT for an empty subject", method: "PUT", path: "/mode/imp", body: `{"mode":"import"}`, status: 200, want: `{"mode":"IMPORT"}`},
		{name: "import with explicit id and version", method: "POST", path: "/subjects/imp/versions", body: sb(imported, `"id":100`, `"version":5`), status: 200, contains: []string{`{"id":100,`}},
		{name: "imported version", method: "GET", path: "/subjects/imp/versions/5", status: 200, contains: []string{`"version":5,"id":100`}},
		{name: "import needs an id", method: "POST", path: "/subjects/imp/versions", body: sb(importedV2), status: 422, code: 42205},
		{name: "import cannot reuse an id for another schema", method: "POST", path: "/subjects/imp/versions", body: sb(otherSchema, `"id":1`), status: 422, code: 42205},
		{name: "import cannot overwrite a version", method: "POST", path: "/subjects/imp/versions", body: sb(otherSchema, `"id":200`, `"version":5`), status: 422, code: 42205},
		{name: "import the same schema as another version", method: "POST", path: "/subjects/imp/versions", body: sb(imported, `"id":100`, `"version":6`), status: 200, contains: []string{`{"id":100,`}},
		{name: "back to READWRITE", method: "PUT", path: "/mode/imp", body: `{"mode":"READWRITE"}`, status: 200, want: `{"mode":"READWRITE"}`},
		{name: "new ids continue after imported ones", method: "POST", path: "/subjects/imp/versions", body: sb(importedV2), status: 200, contains: []string{`{"id":101,`}},
		{name: "imported subject versions", method: "GET", path: "/subjects/imp/versions", status: 200, want: `[5,6,7]`},
		{name: "a version must be the next one outside IMPORT", method: "POST", path: "/subjects/imp/versions", body: sb(importedV3, `"version":3`), status: 422, code: 42201},

		// normalize=true stores the normalized form.
		{name: "register normalized", method: "POST", path: "/subjects/norm/versions?normalize=true", body: sb(toNormalize), status: 200, contains: []string{`{"id":102,`}},
		{name: "normalized text stored", method: "GET", path: "/subjects/norm/versions/1/schema", status: 200,
			want: `{"name":"pyrite.n.N","type":"record","fields":[{"name":"s","type":"string"}]}`},
		{name: "normalized and original are the same schema", method: "POST", path: "/subjects/norm", body: sb(toNormalize), status: 200, contains: []string{`"id":102`}},
		{name: "normalized form of a known schema keeps its id and text", method: "POST", path: "/subjects/norm2/versions?normalize=true", body: sb(userV1Reordered), status: 200, contains: []string{`{"id":1,`}},
		{name: "one id, one text", method: "GET", path: "/subjects/norm2/versions/1/schema", status: 200, want: userV1},
	})
}
