package upcast_test

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/upcast"
	"github.com/pyrite-dev/pyrite/schemas"
)

// fakeRegistry is an in-memory registry: codec.Registry, the optional version lister, and
// upcast.Lister. Versions can be deleted (soft: they stop being listed) and every call can be
// made to fail.
type fakeRegistry struct {
	mu       sync.Mutex
	byID     map[int]*srclient.Schema
	subjects map[string]map[int]int // subject -> version -> id
	nextID   int
	down     atomic.Bool
	calls    atomic.Int64
}

var (
	_ codec.Registry = (*fakeRegistry)(nil)
	_ upcast.Lister  = (*fakeRegistry)(nil)
)

var errDown = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{byID: map[int]*srclient.Schema{}, subjects: map[string]map[int]int{}, nextID: 100}
}

// withSchemas is a fake holding every file of schemas/.
func withSchemas(t testing.TB) *fakeRegistry {
	t.Helper()
	f := newFakeRegistry()
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		f.register(t, file.Subject, file.Text)
	}
	return f
}

// register adds text as the next version of subject (or returns the id it has there).
func (f *fakeRegistry) register(t testing.TB, subject, text string) int {
	t.Helper()
	id, err := f.add(subject, text)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fakeRegistry) add(subject, text string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.subjects[subject]
	if vs == nil {
		vs = map[int]int{}
		f.subjects[subject] = vs
	}
	next := 1
	for v, id := range vs {
		if f.byID[id].Schema() == text {
			return id, nil
		}
		next = max(next, v+1)
	}
	id := 0
	for i, s := range f.byID {
		if s.Schema() == text {
			id = i
		}
	}
	if id == 0 {
		f.nextID++
		id = f.nextID
		s, err := srclient.NewSchema(id, text, srclient.Avro, 0, nil, nil, nil)
		if err != nil {
			return 0, err
		}
		f.byID[id] = s
	}
	vs[next] = id
	return id, nil
}

func (f *fakeRegistry) deleteVersion(subject string, v int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subjects[subject], v)
}

func (f *fakeRegistry) enter() error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return nil
}

func notFound(code int) error { return srclient.Error{Code: code, Message: "not found"} }

func (f *fakeRegistry) GetSchema(id int) (*srclient.Schema, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byID[id]
	if !ok {
		return nil, notFound(40403)
	}
	return s, nil
}

func (f *fakeRegistry) versioned(subject string, v int) (*srclient.Schema, error) {
	id, ok := f.subjects[subject][v]
	if !ok {
		return nil, notFound(40402)
	}
	s := f.byID[id]
	return srclient.NewSchema(id, s.Schema(), srclient.Avro, v, nil, nil, nil)
}

func (f *fakeRegistry) GetLatestSchema(subject string) (*srclient.Schema, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.subjects[subject]
	if len(vs) == 0 {
		return nil, notFound(40401)
	}
	return f.versioned(subject, slices.Max(slices.Collect(maps.Keys(vs))))
}

func (f *fakeRegistry) GetSchemaByVersion(subject string, version int) (*srclient.Schema, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subjects[subject]; !ok {
		return nil, notFound(40401)
	}
	return f.versioned(subject, version)
}

func (f *fakeRegistry) GetSubjectVersionsById(id int) (srclient.SubjectVersionResponse, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out srclient.SubjectVersionResponse
	for subject, vs := range f.subjects {
		for v, x := range vs {
			if x == id {
				out = append(out, srclient.SubjectVersionResponse{{Subject: subject, Version: v}}...)
			}
		}
	}
	if len(out) == 0 {
		return nil, notFound(40403)
	}
	return out, nil
}

func (f *fakeRegistry) GetSubjects() ([]string, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for s, vs := range f.subjects {
		if len(vs) > 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeRegistry) GetSchemaVersions(subject string) ([]int, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	vs, ok := f.subjects[subject]
	if !ok || len(vs) == 0 {
		return nil, notFound(40401)
	}
	out := slices.Collect(maps.Keys(vs))
	slices.Sort(out)
	return out, nil
}
