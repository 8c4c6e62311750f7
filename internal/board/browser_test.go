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
	topo, err := topology.New(topology.Dev)
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
	ingestURL := startComponent(t, ctx, &wg, func(ctx context.Context, ln net.Listener) error {
		return ingest.Run(ctx, ln, ingest.Options{Brokers: s.Brokers, Registry: s.RegistryURL, TxnPrefix: "board",
			Topology: s.Topology, Metrics: prometheus.NewRegistry()})
	})
	startComponent(t, ctx, &wg, func(ctx context.Context, ln net.Listener) error {
		return upcaster.Run(ctx, ln, upcaster.Options{Brokers: s.Brokers, Registry: s.RegistryURL,
			Topology: s.Topology, Metrics: prometheus.NewRegistry(), Config: upcaster.Config{TransactionalID: "board-upcaster"}})
	})
	waitReady(t, ingestURL)
	addr, storePath := freeAddr(t), filepath.Join(t.TempDir(), "projector.db")
	proj := startChild(t, s, addr, storePath)
	boardURL := "http://" + addr + "/"
	shots := t.TempDir()

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, for the life of bctx
		t.Fatalf("start chromium: %v", err)
	}
	// run runs steps, each wait bounded so that a page that never gets there fails the test.
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
		raw, err := chromedp.Run(sctx, chromedp.Evaluate[json.RawMessage](expr))
		if err == nil {
			err = json.Unmarshal(raw, v)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
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
