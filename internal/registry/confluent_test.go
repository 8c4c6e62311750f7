package registry

import (
	"encoding/json"
	"testing"
)

// The GUIDs below were computed outside Go, with Java's MessageDigest and
// java.util.UUID over the same inputs Confluent's MD5.ofSchema hashes (the
// schema text; each reference's name, subject and 4-byte big-endian
// version; a 1 byte and then the metadata's sorted keys and values), so the
// test checks the derivation against Confluent's, not against itself.
const (
	guidUserV1         = "fda9db52-f035-36ec-ddcd-289b448b23bc" // userV1
	guidUserV1Metadata = "7e9ff854-8988-7cc3-e1c9-8b019b5d8951" // userV1, properties {"owner":"pyrite"}
	guidPerson         = "e3e8ddd6-448f-3f50-d6f8-aca83ee8b04e" // person with its reference to addr 1
)

// TestSchemaByIDWithSubject is the stock deserializer's request: Confluent's
// serdes in every language ask GET /schemas/ids/{id}?subject=<topic>-value
// (TopicNameStrategy). When that subject does not hold the id, Confluent's
// registry falls back to the id in the default context
// (getSchemaKeyUsingContexts) and answers with the schema and the subject
// version it found.
func TestSchemaByIDWithSubject(t *testing.T) {
	tr := startRegistry(t, newCluster(t))
	userV1JSON, _ := json.Marshal(userV1)
	runSteps(t, tr, []step{
		{name: "register under the record name", method: "POST", path: "/subjects/pyrite.test.User/versions", body: sb(userV1), status: 200},
		{name: "same id under a second subject", method: "POST", path: "/subjects/other/versions", body: sb(userV1), status: 200},
		{name: "subject holding the id", method: "GET", path: "/schemas/ids/1?subject=other", status: 200,
			want: `{"subject":"other","version":1,"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "topic subject falls back to the default context", method: "GET", path: "/schemas/ids/1?subject=pyrite.test.events-value", status: 200,
			want: `{"subject":"other","version":1,"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "without subject", method: "GET", path: "/schemas/ids/1", status: 200,
			want: `{"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "unknown id with a subject", method: "GET", path: "/schemas/ids/9?subject=pyrite.test.events-value", status: 404, code: 40403},
		{name: "raw text falls back too", method: "GET", path: "/schemas/ids/1/schema?subject=nobody", status: 200, want: userV1},
		{name: "versions of an id: the subject only picks the context", method: "GET", path: "/schemas/ids/1/versions?subject=nobody", status: 200,
			want: `[{"subject":"other","version":1},{"subject":"pyrite.test.User","version":1}]`},
		{name: "subjects of an id: likewise", method: "GET", path: "/schemas/ids/1/subjects?subject=other", status: 200,
			want: `["other","pyrite.test.User"]`},
	})
}

// TestGUID checks that register, lookup and version answers carry the
// schema's GUID derived as Confluent derives it, that GET
// /schemas/guids/{guid} answers it, that metadata and references count,
// and that a restart changes nothing.
func TestGUID(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	userV1JSON, _ := json.Marshal(userV1)
	meta := `"metadata":{"properties":{"owner":"pyrite"}}`
	runSteps(t, tr, []step{
		{name: "register answers the guid", method: "POST", path: "/subjects/user/versions", body: sb(userV1), status: 200,
			want: `{"id":1,"version":1,"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "lookup answers it", method: "POST", path: "/subjects/user", body: sb(userV1Reordered), status: 200,
			contains: []string{`"guid":"` + guidUserV1 + `"`, `"id":1`}},
		{name: "a version answers it", method: "GET", path: "/subjects/user/versions/1", status: 200,
			want: `{"subject":"user","version":1,"id":1,"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "by guid", method: "GET", path: "/schemas/guids/" + guidUserV1, status: 200,
			want: `{"guid":"` + guidUserV1 + `","schema":` + string(userV1JSON) + `}`},
		{name: "ids of a guid", method: "GET", path: "/schemas/guids/" + guidUserV1 + "/ids", status: 200, want: `[{"context":".","id":1}]`},
		{name: "unknown guid", method: "GET", path: "/schemas/guids/00000000-0000-0000-0000-000000000000", status: 404, code: 40403},
		{name: "not a guid", method: "GET", path: "/schemas/guids/xyz", status: 404, code: 40403},

		{name: "metadata makes another schema", method: "POST", path: "/subjects/owned/versions", body: sb(userV1, meta), status: 200,
			contains: []string{`"id":2`, `"guid":"` + guidUserV1Metadata + `"`, `"metadata":{"properties":{"owner":"pyrite"}}`}},
		{name: "metadata stored on the version", method: "GET", path: "/subjects/owned/versions/1", status: 200,
			contains: []string{`"metadata":{"properties":{"owner":"pyrite"}}`, guidUserV1Metadata}},
		{name: "latest with metadata", method: "GET", path: "/subjects/owned/metadata?key=owner&value=pyrite", status: 200,
			contains: []string{`"version":1`, `"id":2`, guidUserV1Metadata}},
		{name: "no version with that metadata", method: "GET", path: "/subjects/owned/metadata?key=owner&value=else", status: 404, code: 40403},
		{name: "metadata of an unknown subject", method: "GET", path: "/subjects/nobody/metadata?key=owner&value=pyrite", status: 404, code: 40401},
		{name: "a version without metadata inherits the previous one's", method: "POST", path: "/subjects/owned/versions", body: sb(userV2), status: 200,
			contains: []string{`"version":2`, `"metadata":{"properties":{"owner":"pyrite"}}`}},
		{name: "soft-delete the newest owned version", method: "DELETE", path: "/subjects/owned/versions/2", status: 200},
		{name: "latest with metadata skips it", method: "GET", path: "/subjects/owned/metadata?key=owner&value=pyrite", status: 200,
			contains: []string{`"version":1`}},
		{name: "latest with metadata, deleted=true", method: "GET", path: "/subjects/owned/metadata?key=owner&value=pyrite&deleted=true", status: 200,
			contains: []string{`"version":2`}},
		{name: "normalize=true stores the normalized text", method: "POST", path: "/subjects/norm/versions?normalize=true", body: sb(toNormalize), status: 200,
			contains: []string{`"schema":"{\"name\":\"pyrite.n.N\",\"type\":\"record\",\"fields\":[{\"name\":\"s\",\"type\":\"string\"}]}"`}},
		{name: "normalize=true on lookup", method: "POST", path: "/subjects/norm?normalize=true", body: sb(toNormalize), status: 200,
			contains: []string{`"subject":"norm"`, `"version":1`}},
		{name: "a rule with an unknown kind", method: "POST", path: "/subjects/ruled/versions",
			body: sb(userV1, `"ruleSet":{"domainRules":[{"name":"x","kind":"MAGIC"}]}`), status: 422, code: 42201},
		{name: "rule set stored and returned", method: "POST", path: "/subjects/ruled/versions",
			body: sb(userV1, `"ruleSet":{"domainRules":[{"name":"check","kind":"CONDITION","mode":"WRITE","type":"CEL","expr":"message.id != ''"}]}`), status: 200,
			contains: []string{`"ruleSet":{"domainRules":[{"name":"check","kind":"CONDITION","mode":"WRITE","type":"CEL","expr":"message.id != ''"}]}`}},

		{name: "addr", method: "POST", path: "/subjects/addr/versions", body: sb(address), status: 200},
		{name: "references count", method: "POST", path: "/subjects/person/versions", body: sb(person, personRefs), status: 200,
			contains: []string{`"guid":"` + guidPerson + `"`}},

		{name: "incompatible is 409 with 40901 and the field", method: "POST", path: "/subjects/user/versions", body: sb(userNoDefault), status: 409, code: 40901,
			contains: []string{`age`}},
	})
	reads := []string{"/schemas/guids/" + guidUserV1, "/schemas/guids/" + guidUserV1Metadata, "/schemas/guids/" + guidPerson,
		"/subjects/owned/versions/2?deleted=true", "/schemas/ids/3"}
	before := map[string]response{}
	for _, p := range reads {
		before[p] = tr.do(t, "GET", p, "")
	}
	tr.stop()
	tr2 := startRegistry(t, c)
	for _, p := range reads {
		if got := tr2.do(t, "GET", p, ""); got.status != 200 || got.body != before[p].body {
			t.Errorf("GET %s after restart: %d %s, before %d %s", p, got.status, got.body, before[p].status, before[p].body)
		}
	}
}

func TestParseGUID(t *testing.T) {
	want, _ := parseGUID(guidUserV1)
	if want.String() != guidUserV1 {
		t.Fatalf("round trip: %s", want)
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{guidUserV1, true},
		{"fda9db52f03536ecddcd289b448b23bc", true}, // Confluent's MD5.fromString takes bare hex too
		{"FDA9DB52-F035-36EC-DDCD-289B448B23BC", true},
		{"fda9db52-f035-36ec-ddcd-289b448b23b", false},
		{"fda9db52-f035-36ec-ddcd-289b448b23bcx", false},
		{"zda9db52-f035-36ec-ddcd-289b448b23bc", false},
		{"", false},
	} {
		g, ok := parseGUID(tc.in)
		if ok != tc.ok || (ok && g != want) {
			t.Errorf("parseGUID(%q) = %s, %v; want ok %v", tc.in, g, ok, tc.ok)
		}
	}
}

func FuzzParseGUID(f *testing.F) {
	f.Add(guidUserV1)
	f.Add("fda9db52f03536ecddcd289b448b23bc")
	f.Add("xyz")
	f.Fuzz(func(t *testing.T, s string) {
		g, ok := parseGUID(s)
		if !ok {
			return
		}
		if back, ok := parseGUID(g.String()); !ok || back != g {
			t.Fatalf("%q parsed to %s, which does not parse back", s, g)
		}
	})
}
