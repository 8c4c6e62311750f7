package codec_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/schemas"
)

// fakeRegistry is an in-memory Registry that counts calls and can fail or block on demand.
type fakeRegistry struct {
	mu       sync.Mutex
	byID     map[int]*srclient.Schema
	subjects map[string][]int // subject -> ids by version-1
	nextID   int

	// err, when set, is returned by every call instead of an answer.
	err atomic.Pointer[error]
	// gate, when set, makes every call wait until it is closed.
	gate atomic.Pointer[chan struct{}]

	calls       atomic.Int64
	idCalls     atomic.Int64
	latestCalls atomic.Int64
	verCalls    atomic.Int64
	listCalls   atomic.Int64
}

var _ codec.Registry = (*fakeRegistry)(nil)

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{byID: map[int]*srclient.Schema{}, subjects: map[string][]int{}, nextID: 100000}
}

// register adds text as the next version of subject and returns its ID.
func (f *fakeRegistry) register(t testing.TB, subject, text string) int {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := f.nextID
	version := len(f.subjects[subject]) + 1
	s, err := srclient.NewSchema(id, text, srclient.Avro, version, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.byID[id] = s
	f.subjects[subject] = append(f.subjects[subject], id)
	return id
}

// put stores a ready-made answer under id (for odd schemas: other types, references).
func (f *fakeRegistry) put(id int, s *srclient.Schema) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[id] = s
}

func (f *fakeRegistry) failWith(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func (f *fakeRegistry) enter() error {
	f.calls.Add(1)
	if g := f.gate.Load(); g != nil {
		<-*g
	}
	if e := f.err.Load(); e != nil {
		return *e
	}
	return nil
}

func notFound(code int) error { return srclient.Error{Code: code, Message: "not found"} }

func (f *fakeRegistry) GetSchema(id int) (*srclient.Schema, error) {
	f.idCalls.Add(1)
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byID[id]
	if !ok {
		return nil, notFound(40403)
	}
	// The registry's GET /schemas/ids/{id} carries no version.
	return srclient.NewSchema(s.ID(), s.Schema(), derefType(s.SchemaType()), 0, s.References(), nil, nil)
}

func derefType(t *srclient.SchemaType) srclient.SchemaType {
	if t == nil {
		return srclient.Avro
	}
	return *t
}

func (f *fakeRegistry) GetLatestSchema(subject string) (*srclient.Schema, error) {
	f.latestCalls.Add(1)
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := f.subjects[subject]
	if len(ids) == 0 {
		return nil, notFound(40401)
	}
	return f.byID[ids[len(ids)-1]], nil
}

func (f *fakeRegistry) GetSchemaByVersion(subject string, version int) (*srclient.Schema, error) {
	f.verCalls.Add(1)
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids, ok := f.subjects[subject]
	if !ok {
		return nil, notFound(40401)
	}
	if version < 1 || version > len(ids) {
		return nil, notFound(40402)
	}
	return f.byID[ids[version-1]], nil
}

func (f *fakeRegistry) GetSubjectVersionsById(id int) (srclient.SubjectVersionResponse, error) {
	f.listCalls.Add(1)
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out srclient.SubjectVersionResponse
	for subj, ids := range f.subjects {
		for i, x := range ids {
			if x == id {
				out = append(out, srclient.SubjectVersionResponse{{Subject: subj, Version: i + 1}}...)
			}
		}
	}
	if len(out) == 0 {
		return nil, notFound(40403)
	}
	return out, nil
}

// fixture is a fake registry holding every file of schemas/ and a Codec on it.
type fixture struct {
	reg   *fakeRegistry
	codec *codec.Codec
	ids   map[string]int // "<subject>.v<N>" -> id
}

func newFixture(t testing.TB, opts ...codec.Option) *fixture {
	t.Helper()
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{reg: newFakeRegistry(), ids: map[string]int{}}
	for _, f := range files {
		fx.ids[f.Subject+".v"+strconv.Itoa(f.Version)] = fx.reg.register(t, f.Subject, f.Text)
	}
	fx.codec = codec.New(fx.reg, opts...)
	return fx
}

const progressSubject = "pyrite.workeffort.ProgressUpdated"

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
