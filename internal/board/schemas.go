package board

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// Subject is one subject in GET /v1/board/schemas.
type Subject struct {
	Subject  string `json:"subject"`
	Versions []int  `json:"versions"`
}

func (b *Board) schemas(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var names []string
	if err := b.get(ctx, "/subjects", &names); err != nil {
		writeProblem(w, http.StatusBadGateway, "registry", "Registry unavailable", err.Error(), "")
		return
	}
	out := make([]Subject, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range names {
		out[i].Subject = name
		g.Go(func() error { return b.get(gctx, "/subjects/"+url.PathEscape(name)+"/versions", &out[i].Versions) })
	}
	if err := g.Wait(); err != nil {
		writeProblem(w, http.StatusBadGateway, "registry", "Registry unavailable", err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subjects": out})
}

// FieldChange is one top-level field in a diff: "added", "removed",
// "changed" (type or default) or "same".
type FieldChange struct {
	Name   string     `json:"name"`
	Change string     `json:"change"`
	From   *FieldSpec `json:"from,omitempty"`
	To     *FieldSpec `json:"to,omitempty"`
}

// FieldSpec is a field's type and default as the schema writes them.
type FieldSpec struct {
	Type       json.RawMessage `json:"type"`
	Default    json.RawMessage `json:"default,omitempty"`
	HasDefault bool            `json:"hasDefault"`
}

// Diff is GET /v1/board/schemas/diff.
type Diff struct {
	Subject string `json:"subject"`
	From    int    `json:"from"`
	To      int    `json:"to"`
	// Level is the subject's compatibility level; Compatible is whether
	// version To is compatible with version From under it (To as the
	// candidate), with Messages saying why not.
	Level      string        `json:"level"`
	Compatible bool          `json:"compatible"`
	Messages   []string      `json:"messages"`
	Fields     []FieldChange `json:"fields"`
}

type registered struct {
	Schema string `json:"schema"`
}

func (b *Board) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	subject := q.Get("subject")
	from, ferr := strconv.Atoi(q.Get("from"))
	to, terr := strconv.Atoi(q.Get("to"))
	switch {
	case subject == "":
		writeProblem(w, http.StatusBadRequest, "bad-request", "Missing subject", "subject is required", "subject")
		return
	case ferr != nil || from < 1:
		writeProblem(w, http.StatusBadRequest, "bad-request", "Bad from", "from must be a version number", "from")
		return
	case terr != nil || to < 1:
		writeProblem(w, http.StatusBadRequest, "bad-request", "Bad to", "to must be a version number", "to")
		return
	}
	ctx := r.Context()
	base := "/subjects/" + url.PathEscape(subject) + "/versions/"
	var a, c registered
	var cfg struct {
		Level string `json:"compatibilityLevel"`
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return b.get(gctx, base+strconv.Itoa(from), &a) })
	g.Go(func() error { return b.get(gctx, base+strconv.Itoa(to), &c) })
	g.Go(func() error {
		if b.get(gctx, "/config/"+url.PathEscape(subject)+"?defaultToGlobal=true", &cfg) != nil || cfg.Level == "" {
			return b.get(gctx, "/config", &cfg)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		writeProblem(w, http.StatusBadGateway, "registry", "Registry unavailable", err.Error(), "")
		return
	}
	d := Diff{Subject: subject, From: from, To: to, Level: cfg.Level, Messages: []string{}}
	level, err := compat.ParseLevel(cfg.Level)
	if err != nil {
		level = compat.Backward // the registry's default
		d.Level = string(level)
	}
	msgs, err := compat.Check(level, compat.Schema{Text: c.Schema}, []compat.Schema{{Text: a.Schema}})
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-schema", "Schema does not parse", err.Error(), "")
		return
	}
	d.Compatible, d.Messages = len(msgs) == 0, append(d.Messages, msgs...)
	if d.Fields, err = fieldDiff(a.Schema, c.Schema); err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-schema", "Schema is not a record", err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// fieldDiff compares the top-level fields of two record schemas: the old
// version's fields in order, then the fields only the new one has.
func fieldDiff(oldText, newText string) ([]FieldChange, error) {
	type field struct {
		Name    string          `json:"name"`
		Type    json.RawMessage `json:"type"`
		Default json.RawMessage `json:"default"`
	}
	read := func(text string) ([]field, error) {
		var rec struct {
			Fields []field `json:"fields"`
		}
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			return nil, err
		}
		return rec.Fields, nil
	}
	spec := func(f field) *FieldSpec {
		return &FieldSpec{Type: f.Type, Default: f.Default, HasDefault: f.Default != nil}
	}
	olds, err := read(oldText)
	if err != nil {
		return nil, fmt.Errorf("old version: %w", err)
	}
	news, err := read(newText)
	if err != nil {
		return nil, fmt.Errorf("new version: %w", err)
	}
	byName := map[string]field{}
	for _, f := range news {
		byName[f.Name] = f
	}
	seen := map[string]bool{}
	out := []FieldChange{}
	for _, o := range olds {
		seen[o.Name] = true
		n, ok := byName[o.Name]
		switch {
		case !ok:
			out = append(out, FieldChange{Name: o.Name, Change: "removed", From: spec(o)})
		case compact(o.Type) != compact(n.Type) || compact(o.Default) != compact(n.Default):
			out = append(out, FieldChange{Name: o.Name, Change: "changed", From: spec(o), To: spec(n)})
		default:
			out = append(out, FieldChange{Name: o.Name, Change: "same", From: spec(o), To: spec(n)})
		}
	}
	for _, n := range news {
		if !seen[n.Name] {
			out = append(out, FieldChange{Name: n.Name, Change: "added", To: spec(n)})
		}
	}
	return out, nil
}

// compact is raw JSON with insignificant space removed, for comparing.
func compact(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// get reads path from the registry as JSON into v.
func (b *Board) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.o.Registry+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	resp, err := b.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registry GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
