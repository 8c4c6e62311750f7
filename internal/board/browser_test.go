package board_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// The test binary doubles as the projector process the browser test kills: with
// PYRITE_BOARD_CHILD set it runs projector.Run on the address and store given in the
// environment until it is killed.
func TestMain(m *testing.M) {
	if os.Getenv("PYRITE_BOARD_CHILD") == "1" {
		os.Exit(runChildProjector())
	}
	os.Exit(m.Run())
}

func runChildProjector() int {
	w, err := domain.Wire(stacktest.Modules())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	topo, err := topology.New(topology.Dev, w.Topology()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := server.Listen(os.Getenv("PYRITE_ADDR"), "addr")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = projector.Run(context.Background(), ln, projector.Options{
		Brokers: strings.Split(os.Getenv("PYRITE_BROKERS"), ","), Registry: os.Getenv("PYRITE_REGISTRY"),
		Store: os.Getenv("PYRITE_STORE"), Topology: topo, Metrics: prometheus.NewRegistry(),
		BatchWait: 10 * time.Millisecond, InstanceID: "board-test-projector",
		ReadModels: []projector.ReadModel{workeffort.ReadModel()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childProjector is a projector in its own process.
type childProjector struct {
	cmd *exec.Cmd
}

func startChild(t *testing.T, s *stacktest.Stack, addr, storePath string) *childProjector {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PYRITE_BOARD_CHILD=1", "PYRITE_ADDR="+addr, "PYRITE_STORE="+storePath,
		"PYRITE_BROKERS="+strings.Join(s.Brokers, ","), "PYRITE_REGISTRY="+s.RegistryURL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childProjector{cmd: cmd}
	t.Cleanup(c.kill)
	waitReady(t, "http://"+addr)
	return c
}

// kill sends SIGKILL and reaps the process.
func (c *childProjector) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// post sends one event to ingest and returns its id.
func post(t *testing.T, ingestURL, typ, aggregate, data string) string {
	t.Helper()
	body := fmt.Sprintf(`{"type":%q,"aggregateId":%q,"data":%s,"metadata":{"correlationId":"board-test"}}`, typ, aggregate, data)
	resp, err := http.Post(ingestURL+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s: %s", typ, resp.Status, b)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.ID
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBoardInBrowser drives the board in headless Chromium: events posted to ingest move
// a card across the columns and fill its progress bar; a projector killed with SIGKILL
// and started again is reconnected to, and the page catches up without a repeat.
func TestBoardInBrowser(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make test installs it: apt-get install -y chromium)")
	}
	s := stacktest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ingestURL := startWriters(t, ctx, &wg, s, "board")
	waitReady(t, ingestURL)
	addr, storePath := freeAddr(t), filepath.Join(t.TempDir(), "projector.db")
	proj := startChild(t, s, addr, storePath)
	boardURL := "http://" + addr + "/"
	shots := t.TempDir()

	bctx, run, eval := startBrowser(t, ctx, chrome)
	card := `.column[data-status="%s"] .card[data-id="we-board"]`
	run("open the board", chromedp.Navigate(boardURL), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`)))

	var posted []string
	posted = append(posted, post(t, ingestURL, "WorkEffort:Created", "we-board",
		`{"title":"Ship the live board","description":"SSE","createdAt":"2026-12-05T08:00:00Z","assignee":"ada@example.com"}`))
	run("card appears as planned", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(card, "planned"))))
	posted = append(posted, post(t, ingestURL, "WorkEffort:Started", "we-board", `{"title":"Ship the live board","startedAt":"2026-12-05T08:05:00Z"}`))
	run("card moves to in progress", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(card, "in-progress"))))
	posted = append(posted, post(t, ingestURL, "WorkEffort:ProgressUpdated", "we-board", `{"oldProgress":0,"newProgress":70,"delta":70,"formatted":"70%"}`))
	run("progress bar reaches 70", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(card, "in-progress"))+`[data-progress="70"]`))
	var width string
	eval("bar width", `document.querySelector('.card[data-id="we-board"] .bar > i').style.width`, &width)
	if width != "70%" {
		t.Errorf("progress bar width %q, want 70%%", width)
	}
	// Other work efforts, so the board has something in every column.
	for i, p := range []int{0, 35, 100} {
		id := fmt.Sprintf("we-side-%d", i)
		posted = append(posted, post(t, ingestURL, "WorkEffort:Created", id, fmt.Sprintf(`{"title":"Side quest %d","description":null,"createdAt":"2026-12-05T07:00:00Z","assignee":null}`, i)))
		if p > 0 {
			posted = append(posted, post(t, ingestURL, "WorkEffort:Started", id, fmt.Sprintf(`{"title":"Side quest %d","startedAt":"2026-12-05T07:10:00Z"}`, i)))
			posted = append(posted, post(t, ingestURL, "WorkEffort:ProgressUpdated", id, fmt.Sprintf(`{"oldProgress":0,"newProgress":%d,"delta":%d,"formatted":"%d%%"}`, p, p, p)))
		}
		if p == 100 {
			posted = append(posted, post(t, ingestURL, "WorkEffort:Completed", id, fmt.Sprintf(`{"title":"Side quest %d","completedAt":"2026-12-05T07:50:00Z","duration":2400000,"ticketCount":2,"assigneeEmail":null}`, i)))
		}
	}
	run("every column filled", chromedp.WaitVisible(chromedp.CSS(`.column[data-status="completed"] .card[data-id="we-side-2"]`)))

	// SIGKILL the projector; the page says it is reconnecting.
	proj.kill()
	run("page shows reconnecting", chromedp.WaitVisible(chromedp.CSS(`body[data-conn="reconnecting"]`)))
	screenshot(t, bctx, shots, "board-reconnecting.png")
	posted = append(posted, post(t, ingestURL, "WorkEffort:ProgressUpdated", "we-board", `{"oldProgress":70,"newProgress":90,"delta":20,"formatted":"90%"}`))
	posted = append(posted, post(t, ingestURL, "WorkEffort:Created", "we-late", `{"title":"Posted while the projector was down","description":null,"createdAt":"2026-12-05T08:30:00Z","assignee":null}`))
	startChild(t, s, addr, storePath)
	run("page reconnects and catches up",
		chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(card, "in-progress"))+`[data-progress="90"]`),
		chromedp.WaitVisible(chromedp.CSS(`.column[data-status="planned"] .card[data-id="we-late"]`)))

	// Every event reached the page once: the stream sent no repeat across the kill.
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		eval("read the events the page got", `window.__pyrite.seen`, &seen)
		if len(seen) >= len(posted) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	counts := map[string]int{}
	for _, id := range seen {
		counts[id]++
	}
	for id, n := range counts {
		if n > 1 {
			t.Errorf("event %s reached the page %d times", id, n)
		}
	}
	for _, id := range posted {
		if counts[id] != 1 {
			t.Errorf("posted event %s reached the page %d times", id, counts[id])
		}
	}
	if len(seen) != len(posted) {
		t.Errorf("the page got %d events, %d were posted", len(seen), len(posted))
	}
	run("schema diff shown", chromedp.WaitVisible(chromedp.CSS(`#diff tbody tr`)))
	run("pipeline health shown", chromedp.WaitVisible(chromedp.CSS(`#health tbody tr[data-stage="upcaster"]`)))
	screenshot(t, bctx, shots, "board.png")

	// Phone width: one column, nothing wider than the screen.
	var overflow bool
	run("phone width", chromedp.EmulateViewport(390, 844))
	eval("phone width overflow", `document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow)
	if overflow {
		t.Error("the board is wider than a 390px screen")
	}
	screenshot(t, bctx, shots, "board-phone.png")
}

// screenshot saves the page as PNG in dir (the test's temp dir), and in PYRITE_ARTIFACTS
// when set, and logs its path.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{dir}
	if d := os.Getenv("PYRITE_ARTIFACTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// startComponent runs a program's Run function on a free port until ctx ends and
// returns its base URL.
func startComponent(t *testing.T, ctx context.Context, wg *sync.WaitGroup, run func(ctx context.Context, ln net.Listener) error) string {
	t.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(ctx, ln); err != nil {
			t.Errorf("%v", err)
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestSecureBoardInBrowser drives the board of a projector with a read token (as in
// pyrite dev --secure) in headless Chromium: the page shows the sign-in form, refuses an
// unknown token, and once signed in streams live updates over EventSource with the
// HttpOnly cookie (no script can read it). Signing out shows the form again.
func TestSecureBoardInBrowser(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make test installs it: apt-get install -y chromium)")
	}
	const readToken = "board-read-token-0123456789abcdef"
	auth, err := httpauth.NewTokens([]httpauth.Token{{Token: readToken, Principal: "board-reader"}})
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ingestURL := startWriters(t, ctx, &wg, s, "secure-board")
	projURL := startComponent(t, ctx, &wg, func(ctx context.Context, ln net.Listener) error {
		return projector.Run(ctx, ln, projector.Options{Brokers: s.Brokers, Registry: s.RegistryURL,
			Store: filepath.Join(t.TempDir(), "projector.db"), Topology: s.Topology, Metrics: prometheus.NewRegistry(),
			BatchWait: 10 * time.Millisecond, Auth: auth, ReadModels: s.ReadModels})
	})
	waitReady(t, ingestURL)
	waitReady(t, projURL)
	shots := t.TempDir()

	bctx, run, eval := startBrowser(t, ctx, chrome)
	signIn := func(token string) {
		t.Helper()
		run("sign in", chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)))
	}

	run("open the board: the sign-in form", chromedp.Navigate(projURL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-conn="signin"] #signin`)))
	signIn("wrong-token-0123456789abcdef")
	pctx, pcancel := context.WithTimeout(bctx, 30*time.Second)
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`document.querySelector("#signin-error").textContent.includes("Unknown token")`)); err != nil {
		t.Fatalf("an unknown token is not refused on the page: %v", err)
	}
	pcancel()
	screenshot(t, bctx, shots, "secure-board-signin.png")
	signIn(readToken)
	run("signed in, the stream is live", chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#signin`)))
	var who, cookie string
	eval("who", `document.querySelector("#principal").textContent`, &who)
	if who != "signed in as board-reader" {
		t.Errorf("principal shown: %q", who)
	}
	eval("document.cookie", `document.cookie`, &cookie)
	if strings.Contains(cookie, readToken) {
		t.Errorf("a script can read the token: document.cookie = %q", cookie)
	}

	card := `.column[data-status="%s"] .card[data-id="we-secure"]`
	post(t, ingestURL, "WorkEffort:Created", "we-secure",
		`{"title":"Sign in to the board","description":"cookie","createdAt":"2026-12-05T08:00:00Z","assignee":null}`)
	run("card appears as planned", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(card, "planned"))))
	post(t, ingestURL, "WorkEffort:Started", "we-secure", `{"title":"Sign in to the board","startedAt":"2026-12-05T08:05:00Z"}`)
	post(t, ingestURL, "WorkEffort:ProgressUpdated", "we-secure", `{"oldProgress":0,"newProgress":60,"delta":60,"formatted":"60%"}`)
	run("live update: in progress at 60", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(card, "in-progress")+`[data-progress="60"]`)))
	run("pipeline health and schemas read with the cookie",
		chromedp.WaitVisible(chromedp.CSS(`#health tbody tr[data-stage="upcaster"]`)), chromedp.WaitVisible(chromedp.CSS(`#diff tbody tr`)))
	screenshot(t, bctx, shots, "secure-board.png")

	// A write with the cookie is refused (no cookie auth on writes): the browser sends
	// the cookie on a same-origin POST, and the projector answers 401.
	var status int
	eval("POST with the cookie", `fetch("/v1/work-efforts", {method: "POST", body: "{}"}).then(r => r.status)`, &status)
	if status != http.StatusUnauthorized {
		t.Errorf("POST /v1/work-efforts with the sign-in cookie: %d, want 401", status)
	}

	run("sign out", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="signin"] #signin`)))
	eval("stream after signing out", `fetch("/v1/session").then(r => r.status)`, &status)
	if status != http.StatusUnauthorized {
		t.Errorf("GET /v1/session after signing out: %d, want 401", status)
	}
}

// startBrowser starts headless Chromium for the life of ctx and returns its context,
// run (steps, each wait bounded so that a page that never gets there fails the test)
// and eval (an expression, promises awaited, into v).
func startBrowser(t *testing.T, ctx context.Context, chrome string) (context.Context, func(string, ...chromedp.Action[chromedp.Void]), func(string, string, any)) {
	t.Helper()
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser, for the life of bctx
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, expr string, v any) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		raw, err := chromedp.Run(sctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
		if err == nil {
			err = json.Unmarshal(raw, v)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	return bctx, run, eval
}

// startWriters runs ingest and the upcaster (ids named after prefix) on s until ctx
// ends and returns ingest's base URL.
func startWriters(t *testing.T, ctx context.Context, wg *sync.WaitGroup, s *stacktest.Stack, prefix string) string {
	t.Helper()
	ingestURL := startComponent(t, ctx, wg, func(ctx context.Context, ln net.Listener) error {
		return ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, TxnPrefix: prefix,
			Topology: s.Topology, Metrics: prometheus.NewRegistry()})
	})
	startComponent(t, ctx, wg, func(ctx context.Context, ln net.Listener) error {
		return upcaster.Run(ctx, ln, upcaster.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL,
			Topology: s.Topology, Metrics: prometheus.NewRegistry(), Config: upcaster.Config{TransactionalID: prefix + "-upcaster"}})
	})
	return ingestURL
}
