package registry

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// schemaRequest is the body of register, lookup and compatibility calls.
// Other fields (schemaTagsToAdd, propagateSchemaTags, ...) are ignored.
type schemaRequest struct {
	Schema     *string     `json:"schema"`
	SchemaType *string     `json:"schemaType"`
	References []Reference `json:"references"`
	Metadata   *Metadata   `json:"metadata"`
	RuleSet    *RuleSet    `json:"ruleSet"`
	ID         *int        `json:"id"`
	Version    *int        `json:"version"`
}

// versionResponse is Confluent's Schema entity: a subject version.
type versionResponse struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	GUID       string      `json:"guid"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Metadata   *Metadata   `json:"metadata,omitempty"`
	RuleSet    *RuleSet    `json:"ruleSet,omitempty"`
	Schema     string      `json:"schema"`
}

// schemaByIDResponse is Confluent's SchemaString: subject and version only
// when the request named a subject (GET /schemas/ids/{id}?subject=).
type schemaByIDResponse struct {
	Subject    string      `json:"subject,omitempty"`
	Version    int         `json:"version,omitempty"`
	GUID       string      `json:"guid"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Metadata   *Metadata   `json:"metadata,omitempty"`
	RuleSet    *RuleSet    `json:"ruleSet,omitempty"`
	Schema     string      `json:"schema"`
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// registerResponse is Confluent's RegisterSchemaResponse.
type registerResponse struct {
	ID         int         `json:"id"`
	Version    int         `json:"version,omitempty"`
	GUID       string      `json:"guid"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Metadata   *Metadata   `json:"metadata,omitempty"`
	RuleSet    *RuleSet    `json:"ruleSet,omitempty"`
	Schema     string      `json:"schema"`
}

// contextID is one entry of GET /schemas/guids/{guid}/ids.
type contextID struct {
	Context string `json:"context"`
	ID      int    `json:"id"`
}

type compatibilityResponse struct {
	IsCompatible bool      `json:"is_compatible"`
	Messages     *[]string `json:"messages,omitempty"` // present (maybe empty) only when verbose

}

type configRequest struct {
	Compatibility *string `json:"compatibility"`
}

type configUpdateResponse struct {
	Compatibility string `json:"compatibility"`
}

type configResponse struct {
	CompatibilityLevel string `json:"compatibilityLevel"`
}

type modeBody struct {
	Mode *string `json:"mode"`
}

type modeResponse struct {
	Mode string `json:"mode"`
}

func toVersionResponse(sv *schemaVersion) versionResponse {
	return versionResponse{
		Subject: sv.Subject, Version: sv.Version, ID: sv.ID, GUID: sv.GUID.String(),
		SchemaType: sv.SchemaType, References: sv.Refs, Metadata: sv.Metadata, RuleSet: sv.RuleSet,
		Schema: sv.Schema,
	}
}

func toRegisterResponse(sv *schemaVersion) registerResponse {
	return registerResponse{
		ID: sv.ID, Version: sv.Version, GUID: sv.GUID.String(), SchemaType: sv.SchemaType,
		References: sv.Refs, Metadata: sv.Metadata, RuleSet: sv.RuleSet, Schema: sv.Schema,
	}
}

// candidate is a schema from a request, validated against the state.
type candidate struct {
	text     string      // the text to store
	refs     []Reference // references with "latest" resolved
	tree     compat.Schema
	metadata *Metadata
	ruleSet  *RuleSet
	identity string
}

// makeCandidate validates a request's schema: AVRO only, references that
// exist, a schema hamba/avro parses (with its references, in a fresh cache).
// With normalize the stored text is the normalized form.
func makeCandidate(st *state, req *schemaRequest, normalize bool) (*candidate, error) {
	if req.Schema == nil || strings.TrimSpace(*req.Schema) == "" {
		return nil, newAPIError(codeInvalidSchema, "Empty schema")
	}
	if req.SchemaType != nil && *req.SchemaType != "" && *req.SchemaType != schemaTypeAvro {
		return nil, newAPIError(codeInvalidSchema, "Invalid schema type %s: this registry supports AVRO only", *req.SchemaType)
	}
	refs := make([]Reference, 0, len(req.References))
	for _, ref := range req.References {
		if ref.Subject == "" || (ref.Version < 1 && ref.Version != -1) {
			return nil, newAPIError(codeInvalidSchema, "Invalid schema reference %q: subject %q version %d", ref.Name, ref.Subject, ref.Version)
		}
		if ref.Version == -1 {
			latest := st.latest(ref.Subject)
			if latest == nil {
				return nil, newAPIError(codeInvalidSchema, "Invalid schema of type AVRO, details: No schema reference found for subject %q and version latest", ref.Subject)
			}
			ref.Version = latest.Version
		}
		refs = append(refs, ref)
	}
	if len(refs) == 0 {
		refs = nil
	}
	tree, err := st.resolveRefs(refs, 0)
	if err != nil {
		return nil, newAPIError(codeInvalidSchema, "Invalid schema of type AVRO, details: %v", err)
	}
	text := *req.Schema
	if _, err := parseAvro(compat.Schema{Text: text, References: tree}); err != nil {
		return nil, newAPIError(codeInvalidSchema, "Invalid schema of type AVRO, details: %v", err)
	}
	norm, err := normalizeAvro(text, tree)
	if err != nil {
		return nil, newAPIError(codeInvalidSchema, "Invalid schema of type AVRO, details: %v", err)
	}
	if normalize {
		text = norm
	}
	if err := validateRuleSet(req.RuleSet); err != nil {
		return nil, err
	}
	md, rs := req.Metadata.canonical(), req.RuleSet.canonical()
	return &candidate{
		text:     text,
		refs:     refs,
		tree:     compat.Schema{Text: text, References: tree},
		metadata: md,
		ruleSet:  rs,
		identity: st.identityOf(text, "", refs, md, rs),
	}, nil
}

// inherit gives c the metadata and rule set of prev where c has none, as
// Confluent's registry does for a new version (maybeSetMetadataRuleSet); it
// reports whether anything changed.
func (c *candidate) inherit(st *state, prev *schemaVersion) bool {
	if prev == nil || (c.metadata != nil || prev.Metadata == nil) && (c.ruleSet != nil || prev.RuleSet == nil) {
		return false
	}
	if c.metadata == nil {
		c.metadata = prev.Metadata
	}
	if c.ruleSet == nil {
		c.ruleSet = prev.RuleSet
	}
	c.identity = st.identityOf(c.text, "", c.refs, c.metadata, c.ruleSet)
	return true
}

// Rule kinds and modes Confluent accepts.
var (
	ruleKinds = []string{"TRANSFORM", "CONDITION"}
	ruleModes = []string{"UPGRADE", "DOWNGRADE", "UPDOWN", "WRITE", "READ", "WRITEREAD"}
)

// validateRuleSet checks what Confluent's RuleSet.validate checks first:
// every rule has a name, a known kind and a known mode.
func validateRuleSet(rs *RuleSet) error {
	if rs == nil {
		return nil
	}
	for _, rules := range [][]Rule{rs.MigrationRules, rs.DomainRules, rs.EncodingRules} {
		for _, r := range rules {
			switch {
			case r.Name == "":
				return newAPIError(codeInvalidSchema, "Invalid rule set: a rule has no name")
			case r.Kind != "" && !slices.Contains(ruleKinds, r.Kind):
				return newAPIError(codeInvalidSchema, "Invalid rule set: rule %s has unknown kind %q", r.Name, r.Kind)
			case r.Mode != "" && !slices.Contains(ruleModes, r.Mode):
				return newAPIError(codeInvalidSchema, "Invalid rule set: rule %s has unknown mode %q", r.Name, r.Mode)
			}
		}
	}
	return nil
}

// compatSchemas turns stored versions into what compat.Check takes.
func compatSchemas(st *state, versions []*schemaVersion) ([]compat.Schema, error) {
	out := make([]compat.Schema, 0, len(versions))
	for _, sv := range versions {
		if sv.SchemaType != "" {
			return nil, fmt.Errorf("version %d of %s is a %s schema", sv.Version, sv.Subject, sv.SchemaType)
		}
		tree, err := st.resolveRefs(sv.Refs, 0)
		if err != nil {
			return nil, fmt.Errorf("version %d of %s: %w", sv.Version, sv.Subject, err)
		}
		out = append(out, compat.Schema{Text: sv.Schema, References: tree})
	}
	return out, nil
}

// checkCompat runs compat.Check and appends Confluent's trailer naming the
// level when there are messages.
func checkCompat(level string, cand compat.Schema, existing []compat.Schema) ([]string, error) {
	msgs, err := compat.Check(compat.Level(level), cand, existing)
	if err != nil {
		return nil, newAPIError(codeInvalidSchema, "Invalid schema of type AVRO, details: %v", err)
	}
	if len(msgs) > 0 {
		msgs = append(msgs, fmt.Sprintf("{compatibility: '%s'}", level))
	}
	return msgs, nil
}

func validSubject(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// --- subjects ---

func (r *Registry) listSubjects(req *http.Request) (any, error) {
	q := req.URL.Query()
	prefix := q.Get("subjectPrefix")
	if prefix == ":*:" {
		prefix = ""
	}
	deleted, deletedOnly := boolParam(q, "deleted"), boolParam(q, "deletedOnly")
	out := []string{}
	_ = r.view(func(st *state) error {
		for subject, versions := range st.subjects {
			if !strings.HasPrefix(subject, prefix) {
				continue
			}
			for _, sv := range versions {
				if (deletedOnly && sv.Deleted) || (!deletedOnly && (deleted || !sv.Deleted)) {
					out = append(out, subject)
					break
				}
			}
		}
		return nil
	})
	slices.Sort(out)
	return page(q, out), nil
}

func (r *Registry) listVersions(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	q := req.URL.Query()
	deleted, deletedOnly, asNegative := boolParam(q, "deleted"), boolParam(q, "deletedOnly"), boolParam(q, "deletedAsNegative")
	out := []int{}
	err := r.view(func(st *state) error {
		if !st.hasSubject(subject, deleted || deletedOnly) {
			return errSubjectNotFound(subject)
		}
		for _, sv := range st.versions(subject, true) {
			switch {
			case asNegative && sv.Deleted:
				out = append(out, -sv.Version)
			case asNegative:
				out = append(out, sv.Version)
			case deletedOnly:
				if sv.Deleted {
					out = append(out, sv.Version)
				}
			case deleted || !sv.Deleted:
				out = append(out, sv.Version)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page(q, out), nil
}

// findVersion resolves a version path segment of subject.
func findVersion(st *state, subject, versionStr string, includeDeleted bool) (*schemaVersion, error) {
	v, err := parseVersion(versionStr)
	if err != nil {
		return nil, err
	}
	var sv *schemaVersion
	if v == -1 {
		sv = st.latest(subject)
	} else {
		sv = st.get(subject, v, includeDeleted)
	}
	if sv == nil {
		if !st.hasSubject(subject, includeDeleted) {
			return nil, errSubjectNotFound(subject)
		}
		return nil, errVersionNotFound(v)
	}
	return sv, nil
}

func (r *Registry) getVersion(req *http.Request) (any, error) {
	var out versionResponse
	err := r.view(func(st *state) error {
		sv, err := findVersion(st, req.PathValue("subject"), req.PathValue("version"), boolParam(req.URL.Query(), "deleted"))
		if err == nil {
			out = toVersionResponse(sv)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Registry) getVersionSchema(req *http.Request) (any, error) {
	v, err := r.getVersion(req)
	if err != nil {
		return nil, err
	}
	return rawText(v.(versionResponse).Schema), nil
}

func (r *Registry) getReferencedBy(req *http.Request) (any, error) {
	var ids []int
	err := r.view(func(st *state) error {
		sv, err := findVersion(st, req.PathValue("subject"), req.PathValue("version"), true)
		if err != nil {
			return err
		}
		ids = st.referencedBy(sv.Subject, sv.Version, boolParam(req.URL.Query(), "deleted"), nil)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []int{}
	}
	return page(req.URL.Query(), ids), nil
}

func (r *Registry) lookupSchema(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	deleted, normalize := boolParam(req.URL.Query(), "deleted"), boolParam(req.URL.Query(), "normalize")
	body, err := decodeBody[schemaRequest](req, r.cfg.maxBody)
	if err != nil {
		return nil, err
	}
	var out versionResponse
	err = r.view(func(st *state) error {
		cand, err := makeCandidate(st, body, normalize)
		if err != nil {
			return err
		}
		versions := st.versions(subject, deleted)
		find := func() bool {
			for i := len(versions) - 1; i >= 0; i-- {
				if versions[i].identity == cand.identity {
					out = toVersionResponse(versions[i])
					return true
				}
			}
			return false
		}
		// As Confluent: as sent, then with the latest version's metadata
		// and rule set where the request has none.
		if find() || (cand.inherit(st, st.latest(subject)) && find()) {
			return nil
		}
		if !st.hasSubject(subject, deleted) {
			return errSubjectNotFound(subject)
		}
		return errSchemaNotFound()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Registry) registerSchema(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	q := req.URL.Query()
	normalize, force := boolParam(q, "normalize"), boolParam(q, "force")
	if !validSubject(subject) {
		return nil, newAPIError(codeInvalidSubject, "Invalid subject %q", subject)
	}
	body, err := decodeBody[schemaRequest](req, r.cfg.maxBody)
	if err != nil {
		return nil, err
	}
	return r.write(req.Context(), func(st *state) (*plan, error) {
		p, err := planRegister(st, subject, body, normalize, force)
		if err == nil && len(p.records) > 0 {
			err = r.checkLiveReaders(st, subject, body, normalize, force)
		}
		if err != nil {
			return nil, err
		}
		return p, nil
	})
}

// planRegister follows Confluent's register: mode checks, the same schema
// already in the subject answers its id without writing, the same schema
// elsewhere shares its id, compatibility against the live versions (unless
// IMPORT mode or force), then a new version with a new or explicit id.
func planRegister(st *state, subject string, body *schemaRequest, normalize, force bool) (*plan, error) {
	mode := st.mode(subject)
	id := -1
	if body.ID != nil && *body.ID >= 0 {
		id = *body.ID
	}
	switch {
	case st.readOnly(subject):
		return nil, errReadOnly(subject)
	case id >= 0 && mode != modeImport:
		return nil, errNotPermitted("Subject %s is not in import mode", subject)
	case id < 0 && mode != modeReadWrite:
		return nil, errNotPermitted("Subject %s is not in read-write mode", subject)
	}
	reqVersion := 0
	if body.Version != nil && *body.Version > 0 {
		reqVersion = *body.Version
	}
	cand, err := makeCandidate(st, body, normalize)
	if err != nil {
		return nil, err
	}
	if mode != modeImport {
		cand.inherit(st, st.latest(subject))
	}
	schemaID := -1
	if existing, ok := st.byIdentity[cand.identity]; ok && (id < 0 || id == existing) {
		schemaID = existing
	}
	live := st.versions(subject, false)
	if reqVersion == 0 {
		for i := len(live) - 1; i >= 0; i-- {
			if sv := live[i]; sv.identity == cand.identity && (id < 0 || id == sv.ID) {
				return &plan{result: toRegisterResponse(sv)}, nil
			}
		}
	}
	if mode != modeImport && !force {
		level := st.compatibility(subject)
		existing, err := compatSchemas(st, live)
		if err != nil {
			return nil, newAPIError(codeInvalidSchema, "Cannot check compatibility: %v", err)
		}
		msgs, err := checkCompat(level, cand.tree, existing)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			return nil, newAPIError(codeIncompatibleSchema,
				"Schema being registered is incompatible with an earlier schema for subject \"%s\", details: [%s]",
				subject, strings.Join(msgs, ", "))
		}
	}
	version := st.nextVersion(subject)
	if reqVersion > 0 {
		if mode != modeImport && reqVersion != version {
			return nil, newAPIError(codeInvalidSchema, "Version is not one more than previous version")
		}
		version = reqVersion
		if cur := st.subjects[subject][version]; cur != nil {
			if cur.identity == cand.identity && (id < 0 || id == cur.ID) {
				return &plan{result: toRegisterResponse(cur)}, nil
			}
			return nil, errNotPermitted("Overwrite of subject %s version %d is not permitted.", subject, version)
		}
	}
	switch {
	case id >= 0:
		if e := st.ids[id]; e != nil && e.identity != cand.identity {
			return nil, errNotPermitted("Overwrite new schema with id %d is not permitted.", id)
		}
		schemaID = id
	case schemaID < 0:
		schemaID = st.maxID + 1
		for st.ids[schemaID] != nil {
			schemaID++
		}
	}
	var recs []*kgo.Record
	// As Confluent does: a soft-deleted earlier version holding the same
	// schema id is tombstoned when the schema is registered again.
	for _, sv := range st.versions(subject, true) {
		if sv.Deleted && sv.ID == schemaID && sv.Version < version &&
			len(st.referencedBy(sv.Subject, sv.Version, true, nil)) == 0 {
			recs = append(recs, tombstone(schemaKeyBytes(subject, sv.Version)))
		}
	}
	text := cand.text
	if e := st.ids[schemaID]; e != nil {
		text = e.schema // one id, one text: reuse the id's text as Confluent's lookup by hash does
	}
	sv := schemaValue{
		Subject: subject, Version: version, ID: schemaID,
		References: cand.refs, Metadata: cand.metadata, RuleSet: cand.ruleSet, Schema: text,
	}
	recs = append(recs, schemaRecord(sv))
	return &plan{records: recs, result: registerResponse{
		ID: schemaID, Version: version, GUID: deriveGUID(text, cand.refs, cand.metadata, cand.ruleSet).String(),
		References: cand.refs, Metadata: cand.metadata, RuleSet: cand.ruleSet, Schema: text,
	}}, nil
}

func (r *Registry) deleteSubject(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	permanent := boolParam(req.URL.Query(), "permanent")
	return r.write(req.Context(), func(st *state) (*plan, error) {
		switch {
		case !st.hasSubject(subject, true):
			return nil, errSubjectNotFound(subject)
		case !permanent && !st.hasSubject(subject, false):
			return nil, newAPIError(codeSubjectSoftDeleted,
				"Subject '%s' was soft deleted.Set permanent=true to delete permanently", subject)
		case st.readOnly(subject):
			return nil, errReadOnly(subject)
		}
		targets := st.versions(subject, permanent)
		deleted := make([]int, 0, len(targets))
		for _, sv := range targets {
			referrers := map[string]bool{}
			st.referencedBy(subject, sv.Version, permanent, referrers)
			delete(referrers, subject)
			if len(referrers) > 0 {
				return nil, errReferenceExists(subject, sv.Version)
			}
			if permanent && !sv.Deleted {
				return nil, newAPIError(codeSubjectNotSoftDeleted,
					"Subject '%s' was not deleted first before being permanently deleted", subject)
			}
			deleted = append(deleted, sv.Version)
		}
		var recs []*kgo.Record
		if !permanent {
			recs = append(recs, &kgo.Record{
				Key:   subjectKeyBytes(keyTypeDeleteSubject, subject),
				Value: valueBytes(deleteSubjectValue{Subject: subject, Version: deleted[len(deleted)-1]}),
			})
		} else {
			for i := len(deleted) - 1; i >= 0; i-- {
				recs = append(recs, tombstone(schemaKeyBytes(subject, deleted[i])))
			}
			recs = append(recs, settingTombstones(st, subject)...)
		}
		return &plan{records: recs, result: deleted}, nil
	})
}

// settingTombstones deletes subject's own compatibility and mode, as
// Confluent does when a subject is permanently deleted.
func settingTombstones(st *state, subject string) []*kgo.Record {
	var recs []*kgo.Record
	if _, ok := st.compat[subject]; ok {
		recs = append(recs, tombstone(subjectKeyBytes(keyTypeConfig, subject)))
	}
	if _, ok := st.modes[subject]; ok {
		recs = append(recs, tombstone(subjectKeyBytes(keyTypeMode, subject)))
	}
	return recs
}

func errReferenceExists(subject string, version int) *apiError {
	return newAPIError(codeReferenceExists,
		"One or more references exist to the schema {subject=%s,version=%d}", subject, version)
}

func (r *Registry) deleteVersion(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	versionStr := req.PathValue("version")
	permanent := boolParam(req.URL.Query(), "permanent")
	v, err := parseVersion(versionStr)
	if err != nil {
		return nil, err
	}
	return r.write(req.Context(), func(st *state) (*plan, error) {
		var sv *schemaVersion
		if v == -1 {
			sv = st.latest(subject)
		} else {
			sv = st.get(subject, v, true)
		}
		switch {
		case sv != nil && sv.Deleted && !permanent:
			return nil, newAPIError(codeVersionSoftDeleted,
				"Subject '%s' Version %d was soft deleted.Set permanent=true to delete permanently", subject, sv.Version)
		case sv == nil && !st.hasSubject(subject, true):
			return nil, errSubjectNotFound(subject)
		case sv == nil:
			return nil, errVersionNotFound(v)
		case st.readOnly(subject):
			return nil, errReadOnly(subject)
		case len(st.referencedBy(subject, sv.Version, permanent, nil)) > 0:
			return nil, errReferenceExists(subject, sv.Version)
		case permanent && !sv.Deleted:
			return nil, newAPIError(codeVersionNotSoftDeleted,
				"Subject '%s' Version %d was not deleted first before being permanently deleted", subject, sv.Version)
		}
		var recs []*kgo.Record
		if !permanent {
			recs = append(recs, schemaRecord(schemaValue{
				Subject: subject, Version: sv.Version, ID: sv.ID, MD5: sv.MD5, SchemaType: sv.SchemaType,
				References: sv.Refs, Metadata: sv.Metadata, RuleSet: sv.RuleSet, Schema: sv.Schema, Deleted: true,
			}))
		} else {
			recs = append(recs, tombstone(schemaKeyBytes(subject, sv.Version)))
			if len(st.subjects[subject]) == 1 {
				recs = append(recs, settingTombstones(st, subject)...)
			}
		}
		return &plan{records: recs, result: sv.Version}, nil
	})
}

// --- schemas ---

func (r *Registry) listSchemas(req *http.Request) (any, error) {
	q := req.URL.Query()
	prefix := q.Get("subjectPrefix")
	deleted, latestOnly := boolParam(q, "deleted"), boolParam(q, "latestOnly")
	out := []versionResponse{}
	_ = r.view(func(st *state) error {
		subjects := make([]string, 0, len(st.subjects))
		for s := range st.subjects {
			if strings.HasPrefix(s, prefix) {
				subjects = append(subjects, s)
			}
		}
		slices.Sort(subjects)
		for _, s := range subjects {
			versions := st.versions(s, deleted)
			if latestOnly && len(versions) > 0 {
				versions = versions[len(versions)-1:]
			}
			for _, sv := range versions {
				out = append(out, toVersionResponse(sv))
			}
		}
		return nil
	})
	return page(q, out), nil
}

// schemaID parses the id path segment; an unparsable one is an unknown id.
func schemaID(req *http.Request) (int, error) {
	s := req.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, errSchemaIDNotFound(s)
	}
	return int(id), nil
}

// getSchemaByID follows Confluent's getSchemaKeyUsingContexts: with a
// subject that holds the id, that subject's version; with any other subject
// (Pyrite has only the default context), any subject version holding the id;
// an id no subject version holds is 40403. Subject and version are answered
// only when the request named a subject, as Confluent does.
func (r *Registry) getSchemaByID(req *http.Request) (any, error) {
	id, err := schemaID(req)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	var out schemaByIDResponse
	err = r.view(func(st *state) error {
		sv := holderOf(st, id, q.Get("subject"))
		if sv == nil {
			return errSchemaIDNotFound(strconv.Itoa(id))
		}
		out = schemaByIDResponse{
			GUID: sv.GUID.String(), SchemaType: sv.SchemaType, References: sv.Refs,
			Metadata: sv.Metadata, RuleSet: sv.RuleSet, Schema: sv.Schema,
		}
		if q.Has("subject") {
			out.Subject, out.Version = sv.Subject, sv.Version
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// holderOf picks the subject version answering for id: subject's newest
// version holding it, else the first live holder in (subject, version)
// order, else the first soft-deleted one; nil when no version holds id.
func holderOf(st *state, id int, subject string) *schemaVersion {
	holders := st.subjectsForID(id, true)
	var pick *schemaVersion
	for _, sv := range holders {
		if sv.Subject == subject {
			pick = sv // ascending: the last one is the newest
		}
	}
	if pick != nil {
		return pick
	}
	for _, sv := range holders {
		if !sv.Deleted {
			return sv
		}
	}
	if len(holders) > 0 {
		return holders[0]
	}
	return nil
}

func (r *Registry) getSchemaByGUID(req *http.Request) (any, error) {
	s := req.PathValue("guid")
	var out schemaByIDResponse
	err := r.view(func(st *state) error {
		g, ok := parseGUID(s)
		id, known := st.byGUID[g]
		if !ok || !known {
			return errSchemaIDNotFound(s)
		}
		e := st.ids[id]
		out = schemaByIDResponse{
			GUID: e.guid.String(), SchemaType: e.schemaType, References: e.refs,
			Metadata: e.metadata, RuleSet: e.ruleSet, Schema: e.schema,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Registry) getIDsByGUID(req *http.Request) (any, error) {
	out := []contextID{}
	_ = r.view(func(st *state) error {
		if g, ok := parseGUID(req.PathValue("guid")); ok {
			if id, known := st.byGUID[g]; known {
				out = append(out, contextID{Context: ".", ID: id})
			}
		}
		return nil
	})
	return out, nil
}

func (r *Registry) getSchemaTextByID(req *http.Request) (any, error) {
	v, err := r.getSchemaByID(req)
	if err != nil {
		return nil, err
	}
	return rawText(v.(schemaByIDResponse).Schema), nil
}

func (r *Registry) getSubjectsByID(req *http.Request) (any, error) {
	vs, err := r.versionsByID(req)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, v := range vs {
		if !slices.Contains(out, v.Subject) {
			out = append(out, v.Subject)
		}
	}
	return page(req.URL.Query(), out), nil
}

func (r *Registry) getVersionsByID(req *http.Request) (any, error) {
	vs, err := r.versionsByID(req)
	if err != nil {
		return nil, err
	}
	return page(req.URL.Query(), vs), nil
}

func (r *Registry) versionsByID(req *http.Request) ([]subjectVersion, error) {
	id, err := schemaID(req)
	if err != nil {
		return nil, err
	}
	// As Confluent: the subject parameter only picks the context (Pyrite
	// has one), so every subject version holding the id is listed.
	deleted := boolParam(req.URL.Query(), "deleted")
	out := []subjectVersion{}
	err = r.view(func(st *state) error {
		if st.ids[id] == nil {
			return errSchemaIDNotFound(strconv.Itoa(id))
		}
		for _, sv := range st.subjectsForID(id, deleted) {
			out = append(out, subjectVersion{Subject: sv.Subject, Version: sv.Version})
		}
		return nil
	})
	return out, err
}

// getLatestWithMetadata is GET /subjects/{subject}/metadata?key=&value=...:
// the newest version whose metadata properties hold every key=value pair
// (pairs beyond the shorter list are ignored, as Confluent does); soft-deleted
// versions count with deleted=true.
func (r *Registry) getLatestWithMetadata(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	q := req.URL.Query()
	deleted := boolParam(q, "deleted")
	keys, values := q["key"], q["value"]
	want := map[string]string{}
	for i := range min(len(keys), len(values)) {
		want[keys[i]] = values[i]
	}
	var out versionResponse
	err := r.view(func(st *state) error {
		versions := st.versions(subject, deleted)
		for i := len(versions) - 1; i >= 0; i-- {
			sv := versions[i]
			if sv.Metadata == nil || sv.Metadata.Properties == nil {
				continue
			}
			match := true
			for k, v := range want {
				if got, ok := sv.Metadata.Properties[k]; !ok || got != v {
					match = false
					break
				}
			}
			if match {
				out = toVersionResponse(sv)
				return nil
			}
		}
		if !st.hasSubject(subject, deleted) {
			return errSubjectNotFound(subject)
		}
		return errSchemaNotFound()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- compatibility ---

func (r *Registry) checkCompatibilityVersion(req *http.Request) (any, error) {
	v, err := parseVersion(req.PathValue("version"))
	if err != nil {
		return nil, err
	}
	return r.checkCompatibility(req, func(st *state, subject string) ([]*schemaVersion, error) {
		var sv *schemaVersion
		if v == -1 {
			sv = st.latest(subject)
		} else if sv = st.get(subject, v, false); sv == nil {
			return nil, errVersionNotFound(v)
		}
		if sv == nil {
			return nil, nil
		}
		return []*schemaVersion{sv}, nil
	})
}

func (r *Registry) checkCompatibilityAll(req *http.Request) (any, error) {
	return r.checkCompatibility(req, func(st *state, subject string) ([]*schemaVersion, error) {
		return st.versions(subject, false), nil
	})
}

func (r *Registry) checkCompatibility(req *http.Request, against func(*state, string) ([]*schemaVersion, error)) (any, error) {
	subject := req.PathValue("subject")
	q := req.URL.Query()
	verbose, normalize := boolParam(q, "verbose"), boolParam(q, "normalize")
	body, err := decodeBody[schemaRequest](req, r.cfg.maxBody)
	if err != nil {
		return nil, err
	}
	var out compatibilityResponse
	err = r.view(func(st *state) error {
		versions, err := against(st, subject)
		if err != nil {
			return err
		}
		cand, err := makeCandidate(st, body, normalize)
		if err != nil {
			var ae *apiError
			if verbose && errors.As(err, &ae) && ae.Code == codeInvalidSchema {
				out = compatibilityResponse{Messages: &[]string{ae.Message}}
				return nil
			}
			return err
		}
		existing, err := compatSchemas(st, versions)
		if err != nil {
			return newAPIError(codeInvalidSchema, "Cannot check compatibility: %v", err)
		}
		msgs, err := checkCompat(st.compatibility(subject), cand.tree, existing)
		if err != nil {
			return err
		}
		out = compatibilityResponse{IsCompatible: len(msgs) == 0}
		if verbose {
			if msgs == nil {
				msgs = []string{}
			}
			out.Messages = &msgs
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- config ---

func (r *Registry) getConfig(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	var out configResponse
	err := r.view(func(st *state) error {
		if subject == "" || boolParam(req.URL.Query(), "defaultToGlobal") {
			out.CompatibilityLevel = st.compatibility(subject)
			return nil
		}
		l, ok := st.compat[subject]
		if !ok {
			return newAPIError(codeSubjectCompatNotConfigured,
				"Subject '%s' does not have subject-level compatibility configured", subject)
		}
		out.CompatibilityLevel = l
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Registry) putConfig(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	body, err := decodeBody[configRequest](req, r.cfg.maxBody)
	if err != nil {
		return nil, err
	}
	var level compat.Level
	if body.Compatibility != nil {
		if level, err = compat.ParseLevel(*body.Compatibility); err != nil {
			return nil, newAPIError(codeInvalidCompatibilityLevel, invalidCompatibilityLevelDetail)
		}
	}
	return r.write(req.Context(), func(st *state) (*plan, error) {
		if st.readOnly(subject) {
			return nil, errReadOnly(subject)
		}
		if body.Compatibility == nil {
			return &plan{result: configUpdateResponse{Compatibility: st.compatibility(subject)}}, nil
		}
		rec := &kgo.Record{
			Key:   subjectKeyBytes(keyTypeConfig, subject),
			Value: valueBytes(configValue{CompatibilityLevel: string(level)}),
		}
		return &plan{records: []*kgo.Record{rec}, result: configUpdateResponse{Compatibility: string(level)}}, nil
	})
}

func (r *Registry) deleteConfig(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	return r.write(req.Context(), func(st *state) (*plan, error) {
		old, ok := st.compat[subject]
		switch {
		case subject != "" && !ok:
			return nil, errSubjectNotFound(subject)
		case st.readOnly(subject):
			return nil, errReadOnly(subject)
		case subject == "":
			old = st.compatibility("")
		}
		p := &plan{result: configResponse{CompatibilityLevel: old}}
		if ok {
			p.records = []*kgo.Record{tombstone(subjectKeyBytes(keyTypeConfig, subject))}
		}
		return p, nil
	})
}

// --- mode ---

func (r *Registry) getMode(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	var out modeResponse
	err := r.view(func(st *state) error {
		if subject == "" || boolParam(req.URL.Query(), "defaultToGlobal") {
			out.Mode = st.mode(subject)
			return nil
		}
		m, ok := st.modes[subject]
		if !ok {
			return newAPIError(codeSubjectModeNotConfigured,
				"Subject '%s' does not have subject-level mode configured", subject)
		}
		out.Mode = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Registry) putMode(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	force := boolParam(req.URL.Query(), "force")
	body, err := decodeBody[modeBody](req, r.cfg.maxBody)
	if err != nil {
		return nil, err
	}
	if body.Mode == nil {
		return nil, newAPIError(codeInvalidMode, invalidModeDetail)
	}
	mode, err := parseMode(*body.Mode)
	if err != nil {
		return nil, newAPIError(codeInvalidMode, invalidModeDetail)
	}
	return r.write(req.Context(), func(st *state) (*plan, error) {
		return planSetMode(st, subject, mode, force)
	})
}

// planSetMode follows Confluent: entering IMPORT (without force) requires
// that no matching subject has live versions; their soft-deleted versions
// are then permanently deleted and a CLEAR_SUBJECT record written.
func planSetMode(st *state, subject, mode string, force bool) (*plan, error) {
	var recs []*kgo.Record
	if mode == modeImport && st.mode(subject) != modeImport && !force {
		var matching []string
		for s := range st.subjects {
			if subject == "" || s == subject {
				matching = append(matching, s)
			}
		}
		slices.Sort(matching)
		for _, s := range matching {
			if st.hasSubject(s, false) {
				return nil, errNotPermitted("Cannot import since found existing subjects")
			}
		}
		for _, s := range matching {
			for _, sv := range st.versions(s, true) {
				if len(st.referencedBy(s, sv.Version, true, nil)) > 0 {
					return nil, errReferenceExists(s, sv.Version)
				}
				recs = append(recs, tombstone(schemaKeyBytes(s, sv.Version)))
			}
		}
		recs = append(recs, &kgo.Record{
			Key:   subjectKeyBytes(keyTypeClearSubject, subject),
			Value: valueBytes(clearSubjectValue{Subject: subject}),
		})
	}
	recs = append(recs, &kgo.Record{
		Key:   subjectKeyBytes(keyTypeMode, subject),
		Value: valueBytes(modeValue{Mode: mode}),
	})
	return &plan{records: recs, result: modeResponse{Mode: mode}}, nil
}

func (r *Registry) deleteMode(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	return r.write(req.Context(), func(st *state) (*plan, error) {
		old, ok := st.modes[subject]
		switch {
		case subject != "" && !ok:
			return nil, errSubjectNotFound(subject)
		case subject == "":
			old = st.mode("")
		}
		p := &plan{result: modeResponse{Mode: old}}
		if ok {
			p.records = []*kgo.Record{tombstone(subjectKeyBytes(keyTypeMode, subject))}
		}
		return p, nil
	})
}
