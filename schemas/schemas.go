// Package schemas holds every Pyrite event schema, one Avro file per event type and version,
// and lists them for registration.
//
// Layout: <segment>/<Name>.v<N>.avsc, where the file holds the record pyrite.<segment>.<Name>
// and <segment> is one of workeffort, deployment, integration, system. The registry subject
// of a file is its record's full name (RecordNameStrategy), so every event type has its own
// version history. Versions of one subject start at 1 and have no gaps; each version must be
// BACKWARD compatible with the one before it (checked by this package's tests).
//
// The files here are the only definition of an event's fields. Load and All are pure functions
// of the embedded files and safe for concurrent use.
package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

//go:embed */*.avsc
var files embed.FS

// segments are the namespace segments a schema file may live under: the directory names
// below schemas/ and the last part of a record's namespace (pyrite.<segment>).
var segments = []string{"deployment", "integration", "system", "workeffort"}

// Sentinel errors returned by Load (wrapped with the offending file's path).
var (
	// ErrBadPath means a file is not at <segment>/<Name>.v<N>.avsc with a known segment.
	ErrBadPath = errors.New("schemas: bad schema file path")
	// ErrNameMismatch means a file's record name or namespace does not match its path.
	ErrNameMismatch = errors.New("schemas: record name does not match file path")
	// ErrInvalidSchema means a file is not a valid Avro record schema.
	ErrInvalidSchema = errors.New("schemas: invalid Avro schema")
	// ErrVersionGap means a subject's versions do not run 1, 2, ... N without gaps.
	ErrVersionGap = errors.New("schemas: version gap")
)

// File is one schema version.
type File struct {
	// Subject is the registry subject and the record's full name, e.g.
	// "pyrite.workeffort.ProgressUpdated".
	Subject string
	// Segment is the namespace segment and directory, e.g. "workeffort".
	Segment string
	// Name is the record's short name, e.g. "ProgressUpdated".
	Name string
	// Version is the N of .v<N>.avsc, starting at 1.
	Version int
	// Path is the file's path relative to the schemas directory.
	Path string
	// Text is the file's content, exactly as registered.
	Text string
}

var fileRE = regexp.MustCompile(`^([a-z]+)/([A-Za-z_][A-Za-z0-9_]*)\.v([1-9][0-9]*)\.avsc$`)

// All returns the embedded schema files, sorted by subject then version.
func All() ([]File, error) {
	return Load(files)
}

// Load reads every *.avsc file below the root of fsys (other files are ignored) and returns
// them sorted by subject then version. It reports every problem it finds, joined: a path that
// does not follow the layout, a file that is not a valid Avro record, a record whose full name
// does not match its path, and a subject whose versions have gaps or do not start at 1.
func Load(fsys fs.FS) ([]File, error) { return LoadSegments(fsys, segments...) }

// LoadSegments is Load for schema files under the given segments instead of Pyrite's own: a
// domain module's schema folder (its aggregate's segment, e.g. "invoice").
func LoadSegments(fsys fs.FS, segs ...string) ([]File, error) {
	var (
		out  []File
		errs []error
	)
	walkErr := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || path.Ext(p) != ".avsc" {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		f, err := parseFile(p, string(data), segs)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		out = append(out, f)
		return nil
	})
	if walkErr != nil {
		return nil, fmt.Errorf("schemas: walk: %w", walkErr)
	}
	slices.SortFunc(out, func(a, b File) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && out[j].Subject == out[i].Subject {
			if want := j - i + 1; out[j].Version != want {
				errs = append(errs, fmt.Errorf("%w: %s has version %d where version %d was expected (%s)",
					ErrVersionGap, out[j].Subject, out[j].Version, want, out[j].Path))
				break
			}
			j++
		}
		for j < len(out) && out[j].Subject == out[i].Subject {
			j++
		}
		i = j
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func parseFile(p, text string, segs []string) (File, error) {
	m := fileRE.FindStringSubmatch(p)
	if m == nil || !slices.Contains(segs, m[1]) {
		return File{}, fmt.Errorf("%w: %s (want <segment>/<Name>.v<N>.avsc, segment one of %s)",
			ErrBadPath, p, strings.Join(segs, ", "))
	}
	version, err := strconv.Atoi(m[3])
	if err != nil {
		return File{}, fmt.Errorf("%w: %s: version: %v", ErrBadPath, p, err)
	}
	// A fresh cache per file: versions of one record share a name, and a shared cache would
	// let one version's definition stand in for another's.
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return File{}, fmt.Errorf("%w: %s: %v", ErrInvalidSchema, p, err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return File{}, fmt.Errorf("%w: %s: top-level type is %s, not record", ErrInvalidSchema, p, s.Type())
	}
	want := "pyrite." + m[1] + "." + m[2]
	if rec.FullName() != want {
		return File{}, fmt.Errorf("%w: %s holds %s, want %s", ErrNameMismatch, p, rec.FullName(), want)
	}
	return File{
		Subject: want,
		Segment: m[1],
		Name:    m[2],
		Version: version,
		Path:    p,
		Text:    text,
	}, nil
}
