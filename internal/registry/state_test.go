package registry

import (
	"errors"
	"testing"
)

type rec struct {
	key, value string // value "" is a tombstone
	wantErr    error  // nil, errSkipped or ErrConflict
}

func schemaRec(subject string, version, id int, schema string, deleted bool) rec {
	return rec{
		key:   string(schemaKeyBytes(subject, version)),
		value: string(valueBytes(schemaValue{Subject: subject, Version: version, ID: id, Schema: schema, Deleted: deleted})),
	}
}

func conflicting(r rec) rec { r.wantErr = ErrConflict; return r }

func TestStateApply(t *testing.T) {
	const a, b = `"string"`, `"int"`
	tests := []struct {
		name  string
		recs  []rec
		check func(t *testing.T, st *state)
	}{
		{
			name: "schema record",
			recs: []rec{schemaRec("s", 1, 1, a, false)},
			check: func(t *testing.T, st *state) {
				if sv := st.get("s", 1, false); sv == nil || sv.ID != 1 || sv.Schema != a {
					t.Errorf("s/1 = %+v", sv)
				}
				if e := st.ids[1]; e == nil || e.schema != a || e.users != 1 {
					t.Errorf("id 1 = %+v", e)
				}
				if st.maxID != 1 {
					t.Errorf("maxID = %d", st.maxID)
				}
			},
		},
		{
			name: "the same record twice is applied once",
			recs: []rec{schemaRec("s", 1, 1, a, false), schemaRec("s", 1, 1, a, false)},
			check: func(t *testing.T, st *state) {
				if e := st.ids[1]; e.users != 1 {
					t.Errorf("users = %d, want 1", e.users)
				}
			},
		},
		{
			name: "an id given to a second schema is rejected",
			recs: []rec{schemaRec("s", 1, 1, a, false), conflicting(schemaRec("t", 1, 1, b, false))},
			check: func(t *testing.T, st *state) {
				if st.hasSubject("t", true) {
					t.Error("subject t exists")
				}
				if st.ids[1].schema != a {
					t.Errorf("id 1 = %s", st.ids[1].schema)
				}
			},
		},
		{
			name: "an id given to the same schema elsewhere is shared",
			recs: []rec{schemaRec("s", 1, 1, a, false), schemaRec("t", 1, 1, `{"type":"string"}`, false)},
			check: func(t *testing.T, st *state) {
				if st.ids[1].users != 2 {
					t.Errorf("users = %d, want 2", st.ids[1].users)
				}
			},
		},
		{
			name: "a version given a second schema is rejected",
			recs: []rec{schemaRec("s", 1, 1, a, false), conflicting(schemaRec("s", 1, 2, b, false))},
			check: func(t *testing.T, st *state) {
				if st.get("s", 1, false).ID != 1 || st.ids[2] != nil {
					t.Error("s/1 changed")
				}
			},
		},
		{
			name: "soft delete and undelete by record",
			recs: []rec{schemaRec("s", 1, 1, a, false), schemaRec("s", 1, 1, a, true)},
			check: func(t *testing.T, st *state) {
				if st.get("s", 1, false) != nil || st.get("s", 1, true) == nil {
					t.Error("s/1 not soft-deleted")
				}
				if st.ids[1] == nil {
					t.Error("id of a soft-deleted version forgotten")
				}
			},
		},
		{
			name: "tombstone forgets the version and an unused id but not the highest id",
			recs: []rec{schemaRec("s", 1, 1, a, false), schemaRec("s", 2, 2, b, false), {key: string(schemaKeyBytes("s", 2))}},
			check: func(t *testing.T, st *state) {
				if st.subjects["s"][2] != nil || st.ids[2] != nil {
					t.Error("s/2 or id 2 still there")
				}
				if st.maxID != 2 {
					t.Errorf("maxID = %d, want 2", st.maxID)
				}
				if st.nextVersion("s") != 2 {
					t.Errorf("next version %d, want 2", st.nextVersion("s"))
				}
			},
		},
		{
			name: "after a tombstone the version can hold another schema",
			recs: []rec{schemaRec("s", 1, 1, a, false), {key: string(schemaKeyBytes("s", 1))}, schemaRec("s", 1, 2, b, false)},
			check: func(t *testing.T, st *state) {
				if sv := st.get("s", 1, false); sv == nil || sv.ID != 2 {
					t.Errorf("s/1 = %+v", sv)
				}
			},
		},
		{
			name: "DELETE_SUBJECT soft-deletes versions up to its version",
			recs: []rec{
				schemaRec("s", 1, 1, a, false), schemaRec("s", 2, 2, b, false), schemaRec("s", 3, 3, `"long"`, false),
				{key: string(subjectKeyBytes(keyTypeDeleteSubject, "s")), value: `{"subject":"s","version":2}`},
			},
			check: func(t *testing.T, st *state) {
				if got := len(st.versions("s", false)); got != 1 {
					t.Errorf("%d live versions, want 1", got)
				}
			},
		},
		{
			name: "CLEAR_SUBJECT forgets soft-deleted versions only",
			recs: []rec{
				schemaRec("s", 1, 1, a, true), schemaRec("s", 2, 2, b, false),
				{key: string(subjectKeyBytes(keyTypeClearSubject, "s")), value: `{"subject":"s"}`},
			},
			check: func(t *testing.T, st *state) {
				if st.subjects["s"][1] != nil || st.get("s", 2, false) == nil {
					t.Error("wrong versions cleared")
				}
			},
		},
		{
			name: "config and mode set, deleted, and invalid values skipped",
			recs: []rec{
				{key: string(subjectKeyBytes(keyTypeConfig, "")), value: `{"compatibilityLevel":"full"}`},
				{key: string(subjectKeyBytes(keyTypeConfig, "s")), value: `{"compatibilityLevel":"NONE"}`},
				{key: string(subjectKeyBytes(keyTypeConfig, "s")), value: `{"compatibilityLevel":"SIDEWAYS"}`, wantErr: errSkipped},
				{key: string(subjectKeyBytes(keyTypeMode, "")), value: `{"mode":"READONLY"}`},
				{key: string(subjectKeyBytes(keyTypeMode, "")), value: `{"mode":"SOMETIMES"}`, wantErr: errSkipped},
				{key: string(subjectKeyBytes(keyTypeMode, "t")), value: `{"mode":"IMPORT"}`},
				{key: string(subjectKeyBytes(keyTypeMode, "t"))},
			},
			check: func(t *testing.T, st *state) {
				if st.compatibility("") != "FULL" || st.compatibility("s") != "NONE" || st.compatibility("u") != "FULL" {
					t.Errorf("levels %v", st.compat)
				}
				if st.mode("t") != modeReadOnly || !st.readOnly("x") {
					t.Errorf("modes %v", st.modes)
				}
			},
		},
		{
			name: "unreadable and foreign records are skipped",
			recs: []rec{
				{key: `garbage`, value: `{}`, wantErr: errSkipped},
				{key: ``, value: `{}`, wantErr: errSkipped},
				{key: `{"keytype":"CONTEXT","magic":0}`, value: `{}`, wantErr: errSkipped},
				{key: `{"keytype":"NOOP","magic":0}`},
				{key: string(schemaKeyBytes("s", 1)), value: `{`, wantErr: errSkipped},
				{key: string(schemaKeyBytes("s", 1)), value: `{"subject":"other","version":1,"id":1,"schema":"\"int\""}`, wantErr: errSkipped},
				{key: `{"keytype":"SCHEMA","subject":"s","magic":1}`, value: `{}`, wantErr: errSkipped},
			},
			check: func(t *testing.T, st *state) {
				if len(st.subjects) != 0 || len(st.ids) != 0 {
					t.Error("something was applied")
				}
			},
		},
		{
			name: "another schema type is kept as it is",
			recs: []rec{{key: string(schemaKeyBytes("j", 1)), value: `{"subject":"j","version":1,"id":4,"schemaType":"JSON","schema":"{\"type\":\"object\"}","deleted":false}`}},
			check: func(t *testing.T, st *state) {
				if e := st.ids[4]; e == nil || e.schemaType != "JSON" {
					t.Errorf("id 4 = %+v", e)
				}
			},
		},
		{
			name: "an id freed while another id holds the same schema",
			recs: []rec{schemaRec("s", 1, 1, a, false), schemaRec("t", 1, 5, a, false), {key: string(schemaKeyBytes("s", 1))}},
			check: func(t *testing.T, st *state) {
				if id, ok := st.byIdentity[st.ids[5].identity]; !ok || id != 5 {
					t.Errorf("identity points at %d, want 5", id)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newState()
			for i, r := range tt.recs {
				var value []byte
				if r.value != "" {
					value = []byte(r.value)
				}
				err := st.apply([]byte(r.key), value)
				if (r.wantErr == nil) != (err == nil) || (r.wantErr != nil && !errors.Is(err, r.wantErr)) {
					t.Fatalf("record %d: err %v, want %v", i, err, r.wantErr)
				}
			}
			tt.check(t, st)
		})
	}
}
