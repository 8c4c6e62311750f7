package githubsaga_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	owner = "pyrite-dev"
	repo  = "work"
	token = "test-token"
)

// fakeGitHub speaks the three issue endpoints of the GitHub REST API the saga uses.
type fakeGitHub struct {
	srv *httptest.Server

	mu     sync.Mutex
	issues []*fakeIssue
	// Creates of titles containing a key of failCreate answer that status (after creating
	// the issue when created is set).
	failCreate map[string]fakeFailure
	// Closes of issues whose title contains a key answer that status.
	failClose map[string]int
	// hang: creates of titles containing it create the issue and then wait until the
	// request ends or release is closed.
	hang     string
	hung     chan struct{} // closed when a hanging create has created its issue
	release  chan struct{}
	delay    time.Duration
	creates  int
	lists    int
	requests []string
}

type fakeFailure struct {
	status  int
	created bool // the issue is created before the failure is answered
	times   int  // fail this many times (0: always)
}

type fakeIssue struct {
	Number    int       `json:"number"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	State     string    `json:"state"`
	HTMLURL   string    `json:"html_url"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	f := &fakeGitHub{failCreate: map[string]fakeFailure{}, failClose: map[string]int{},
		hung: make(chan struct{}), release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.releaseHang()
		f.srv.Close()
	})
	return f
}

func (f *fakeGitHub) releaseHang() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.release:
	default:
		close(f.release)
	}
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	prefix := "/repos/" + owner + "/" + repo + "/issues"
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == prefix:
		f.create(w, r)
	case r.Method == http.MethodGet && r.URL.Path == prefix:
		f.list(w, r)
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, prefix+"/"):
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, prefix+"/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		f.edit(w, r, n)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeGitHub) create(w http.ResponseWriter, r *http.Request) {
	var req struct{ Title, Body string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"message":"Problems parsing JSON"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.creates++
	var fail *fakeFailure
	for k, v := range f.failCreate {
		if strings.Contains(req.Title, k) {
			if v.times > 0 {
				v.times--
				if v.times == 0 {
					delete(f.failCreate, k)
				} else {
					f.failCreate[k] = v
				}
			}
			fail = &v
		}
	}
	var is *fakeIssue
	if fail == nil || fail.created {
		now := time.Now().UTC()
		is = &fakeIssue{Number: len(f.issues) + 1, Title: req.Title, Body: req.Body, State: "open", CreatedAt: now, UpdatedAt: now}
		is.HTMLURL = fmt.Sprintf("https://github.example/%s/%s/issues/%d", owner, repo, is.Number)
		f.issues = append(f.issues, is)
	}
	hang := f.hang != "" && strings.Contains(req.Title, f.hang)
	if hang {
		close(f.hung)
		f.hang = ""
	}
	out := *orZero(is)
	f.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		http.Error(w, `{"message":"gone away"}`, http.StatusBadGateway)
		return
	}
	if fail != nil {
		http.Error(w, `{"message":"injected failure"}`, fail.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(out)
}

func orZero(is *fakeIssue) *fakeIssue {
	if is == nil {
		return &fakeIssue{}
	}
	return is
}

// list serves GET .../issues with state=all, since, direction and page/per_page, with a
// Link header for the next page.
func (f *fakeGitHub) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, _ := time.Parse(time.RFC3339, q.Get("since"))
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	f.mu.Lock()
	f.lists++
	var all []fakeIssue
	for _, is := range f.issues {
		if (q.Get("state") == "all" || q.Get("state") == is.State) && !is.UpdatedAt.Before(since) {
			all = append(all, *is)
		}
	}
	f.mu.Unlock()
	if q.Get("direction") == "desc" {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	from := min((page-1)*per, len(all))
	to := min(from+per, len(all))
	if to < len(all) {
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, f.srv.URL, next.RequestURI()))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(append([]fakeIssue{}, all[from:to]...))
}

func (f *fakeGitHub) edit(w http.ResponseWriter, r *http.Request, n int) {
	var req struct{ State string }
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if n < 1 || n > len(f.issues) {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	is := f.issues[n-1]
	for k, st := range f.failClose {
		if strings.Contains(is.Title, k) {
			http.Error(w, `{"message":"injected failure"}`, st)
			return
		}
	}
	if req.State != "" {
		is.State = req.State
		is.UpdatedAt = time.Now().UTC()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(is)
}

// byMarker counts the issues whose body holds each work effort's marker.
func (f *fakeGitHub) byWorkEffort(ids ...string) map[string][]fakeIssue {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]fakeIssue{}
	for _, id := range ids {
		for _, is := range f.issues {
			if strings.Contains(is.Body, "pyrite-work-effort-id: "+id+" ") {
				out[id] = append(out[id], *is)
			}
		}
	}
	return out
}

func (f *fakeGitHub) count() (issues, creates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.issues), f.creates
}
