package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/drover-run/drover/pkg/api"
)

// chromium finds the browser: Debian's chromium package, or another
// Chromium/Chrome on PATH. In CI (CI set) a missing browser fails the
// test: .ci/run installs it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH; .ci/run installs it with apt-get install chromium")
	}
	t.Skip("no chromium on PATH (apt-get install chromium); the console's browser tests run in CI")
	return ""
}

// consoleErrors collects what the browser reports as an error: console
// errors, uncaught exceptions and failed loads.
type consoleErrors struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleErrors) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, s)
}

func (c *consoleErrors) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}

// TestConsoleInABrowser drives the web console in headless Chromium
// against real processes: log in with a token, submit a counter job
// through the form and watch its progress reach 100 %, see a coded error
// next to the field it is about, kill -9 the node of a running job's
// master and see the timeline show the master move with its new epoch,
// cancel that job with the button, load the nodes page, and use a narrow
// window, all without a console error. With DROVER_CONSOLE_SCREENSHOTS=dir
// it saves the screenshots of docs/console.md there.
func TestConsoleInABrowser(t *testing.T) {
	browserPath := chromium(t)
	const admin = "e2e-console-admin-token-0123456789"
	c := NewCluster(t, Options{System: true, Env: map[string]string{}})
	jm := c.Start(JobManager, "jm1", "DROVER_HTTP_TOKENS=admin:"+admin+",read:e2e-console-read-token-0123")
	m1 := c.Start(JobMaster, "m1")
	m2 := c.Start(JobMaster, "m2")
	c.Start(Worker, "w1", "DROVER_CAPACITY=64")
	c.Start(Worker, "w2", "DROVER_CAPACITY=64")
	c.WaitNodes(api.NodeJobMaster, "m1", "m2")
	c.WaitNodes(api.NodeWorker, "w1", "w2")
	base := "http://" + jm.HTTPAddr()
	shots := os.Getenv("DROVER_CONSOLE_SCREENSHOTS")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath), chromedp.NoSandbox, chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()
	errs := &consoleErrors{}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				errs.add("console." + string(e.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			errs.add("exception: " + e.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.LevelError {
				errs.add("log: " + e.Entry.Text + " " + e.Entry.URL)
			}
		}
	})
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	noErrors := func(step string) {
		t.Helper()
		for _, e := range errs.take() {
			t.Errorf("%s: browser error: %s", step, e)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		var png []byte
		run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitText polls an expression until it is true (the page updates
	// itself from its live stream; nothing here reloads it).
	waitJS := func(what, expr string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		var last error
		for time.Now().Before(deadline) {
			var ok bool
			ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
			last = chromedp.Run(ectx, chromedp.Evaluate(expr, &ok))
			cancel()
			if last == nil && ok {
				return
			}
			time.Sleep(100 * time.Millisecond) // a page loading after a click answers errors meanwhile
		}
		var page string
		_ = chromedp.Run(ctx, chromedp.Text("main", &page, chromedp.ByQuery))
		t.Fatalf("%s: not within %s (%v); the page says:\n%.1500s", what, within, last, page)
	}

	// Log in: a page asks for a token and comes back to where it was.
	run("log in", cdplog.Enable(),
		chromedp.Navigate(base+"/ui/nodes"),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", admin, chromedp.ByID),
		chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible("#nodes", chromedp.ByID))
	waitJS("the nodes page lists the nodes", `["m1","m2","w1","w2"].every(n => document.querySelector("#nodes").textContent.includes(n))`, 10*time.Second)
	noErrors("login")

	// Submit through the form; the job's page shows its progress reach
	// 100 % by itself.
	submit := func(id, config, then string) {
		t.Helper()
		run("submit "+config, chromedp.Navigate(base+"/ui/submit"),
			chromedp.WaitVisible("#f-config", chromedp.ByID),
			chromedp.SendKeys("#f-id", id, chromedp.ByID),
			chromedp.SetValue("#f-config", config, chromedp.ByID),
			chromedp.Click("#submit", chromedp.ByID),
			chromedp.WaitVisible(then, chromedp.ByQuery))
	}
	submit("web1", `{"workers":4,"target":40,"interval_ms":50}`, "#timeline")
	waitJS("web1's progress reaches 100 %", `(document.querySelector('[data-f="progress"] .pct')||{}).textContent === "100 %"`, 30*time.Second)
	waitJS("web1 finished, in text", `document.querySelector('[data-f="state"]').textContent.trim() === "finished"`, 20*time.Second)
	waitJS("web1's workers grid", `document.querySelectorAll("#grid .cell").length === 4 && /4 worker\(s\): 4 finished/.test(document.querySelector("#worker-summary").textContent)`, 10*time.Second)
	noErrors("submit")

	// A config the job type refuses: the coded error next to the field.
	submit("", `{"workers":0}`, "#err-config")
	var fieldErr string
	run("read the field's error", chromedp.Text("#err-config", &fieldErr, chromedp.ByID))
	if !strings.Contains(fieldErr, "invalid_argument") || !strings.Contains(fieldErr, "workers") {
		t.Errorf("the error next to config: %q", fieldErr)
	}
	// The page's own 400 is expected; anything else is not.
	for _, e := range errs.take() {
		if !strings.Contains(e, "status of 400") {
			t.Errorf("bad config: browser error: %s", e)
		}
	}

	// A long job; its master's node is killed with SIGKILL while the page
	// is open. The timeline shows the move, its reason and the new epoch.
	submit("fo1", `{"workers":24,"target":600,"interval_ms":50}`, "#timeline")
	j := c.WaitJob("fo1", 20*time.Second, "fo1 running with workers", func(j *api.Job) bool { return j.State == api.StateRunning })
	c.WaitProgress("fo1", 60, 30*time.Second)
	waitJS("fo1's timeline shows epoch 1", `document.querySelector("#timeline").textContent.includes("epoch 1")`, 10*time.Second)
	victim := map[string]*Proc{"m1": m1, "m2": m2}[j.Node]
	if victim == nil {
		t.Fatalf("fo1 runs on %q", j.Node)
	}
	victim.Kill()
	waitJS("the timeline shows the master move to epoch 2",
		`/master moved \((disconnect|timeout)\) → epoch 2 on m/.test(document.querySelector("#timeline").textContent)`, 20*time.Second)
	waitJS("the summary shows epoch 2", `document.querySelector('[data-f="epoch"]').textContent.trim() === "2"`, 10*time.Second)
	var caption string
	run("read the caption", chromedp.Text("#tl-cap", &caption, chromedp.ByID))
	if !strings.Contains(caption, "master epochs 1, 2") {
		t.Errorf("the timeline's text alternative: %q", caption)
	}
	run("scroll to the timeline", chromedp.ScrollIntoView("#tl-h", chromedp.ByID))
	time.Sleep(300 * time.Millisecond) // let the frame paint before the picture
	screenshot("job-failover.png")
	noErrors("failover")

	// Cancel with the button; the page follows the job to canceled.
	run("cancel fo1", chromedp.ScrollIntoView("#cancel", chromedp.ByID), chromedp.Click("#cancel", chromedp.ByID))
	waitJS("fo1 canceled", `document.querySelector('[data-f="state"]').textContent.trim() === "canceled"`, 20*time.Second)
	waitJS("no cancel button on an ended job", `document.querySelector("#cancel") === null`, 5*time.Second)
	if j := c.Job("fo1"); j.State != api.StateCanceled {
		t.Fatalf("fo1 after the cancel button: %s", j.State)
	}
	noErrors("cancel")

	// A few jobs for the list, then the jobs and nodes pages.
	for i := range 3 {
		c.Submit(api.Spec{ID: fmt.Sprintf("batch%d", i), Type: "counter", Config: []byte(`{"workers":2,"target":100000,"interval_ms":100}`)})
	}
	run("jobs page", chromedp.Navigate(base+"/ui/jobs"), chromedp.WaitVisible("#jobs", chromedp.ByID))
	waitJS("the jobs page lists every job", `["web1","fo1","batch0","batch2"].every(id => document.querySelector("#jobs").textContent.includes(id))`, 5*time.Second)
	waitJS("running rows fill their progress live", `document.querySelectorAll('#jobs tr[data-id^="batch"] progress').length === 3`, 15*time.Second)
	screenshot("jobs.png")
	run("filter by state", chromedp.Navigate(base+"/ui/jobs?state=canceled"), chromedp.WaitVisible("#jobs", chromedp.ByID))
	waitJS("the filter shows fo1 only", `document.querySelectorAll("#jobs tbody tr").length === 1 && document.querySelector("#jobs tbody").textContent.includes("fo1")`, 5*time.Second)
	run("nodes page", chromedp.Navigate(base+"/ui/nodes"), chromedp.WaitVisible("#nodes", chromedp.ByID))
	waitJS("the nodes page shows the survivor's running masters", `document.querySelectorAll('#nodes a[href^="/ui/jobs/batch"]').length === 3`, 10*time.Second)
	screenshot("nodes.png")
	noErrors("pages")

	// Keyboard: the first Tab reaches the skip link, the next the menu.
	var first, second string
	run("keyboard", chromedp.Navigate(base+"/ui/jobs"), chromedp.WaitVisible("#jobs", chromedp.ByID),
		chromedp.KeyEvent("\t"), chromedp.Evaluate(`document.activeElement.textContent`, &first),
		chromedp.KeyEvent("\t"), chromedp.Evaluate(`document.activeElement.textContent`, &second))
	if first != "Skip to content" || second != "Drover" {
		t.Errorf("tab order starts %q, %q; want the skip link, then the menu", first, second)
	}
	// A narrow window: nothing but the tables' own scroll areas is wider.
	var overflow bool
	run("narrow window", chromedp.EmulateViewport(390, 800), chromedp.Navigate(base+"/ui/jobs/fo1"),
		chromedp.WaitVisible("#timeline", chromedp.ByID),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
	if overflow {
		t.Error("the job page is wider than a 390 px window")
	}
	noErrors("narrow")

	// The workers grid at 10,000 workers (a real job that size takes
	// minutes on a CI machine): the job page's stream replaced by one the
	// test feeds, a snapshot of 10,000 workers, then 500 of them changing.
	var fed struct {
		Cells                int
		Summary, Found       string
		SnapshotMS, UpdateMS float64
	}
	run("a grid of 10,000 workers", chromedp.EmulateViewport(1280, 800),
		chromedp.ActionFunc(func(ctx context.Context) error {
			_, err := page.AddScriptToEvaluateOnNewDocument(fakeEventSource).Do(ctx)
			return err
		}),
		chromedp.Navigate(base+"/ui/jobs/web1"), chromedp.WaitVisible("#grid", chromedp.ByID),
		chromedp.Evaluate(feedTenThousand, &fed, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}))
	if fed.Cells != 10000 || fed.Summary != "10000 worker(s): 500 finished, 9500 online" || !strings.Contains(fed.Found, "w9999 · online · node w2 · epoch 1") {
		t.Errorf("grid of 10,000: %+v", fed)
	}
	t.Logf("grid of 10,000 workers: snapshot rendered in %.0f ms, 500 changes in %.0f ms", fed.SnapshotMS, fed.UpdateMS)
	noErrors("grid of 10,000")
}

// fakeEventSource stands in for the browser's EventSource: the test sends
// the events (window.__es.emit).
const fakeEventSource = `window.EventSource = class {
  constructor(url) { this.url = url; this.readyState = 1; this.handlers = {}; window.__es = this; }
  addEventListener(name, fn) { this.handlers[name] = fn; }
  close() {}
  emit(name, data) { if (this.handlers[name]) this.handlers[name]({ data: JSON.stringify(data) }); }
};
window.EventSource.CLOSED = 2;`

// feedTenThousand sends a snapshot of 10,000 workers, then 500 changes,
// and reports what the page shows and how long each took.
const feedTenThousand = `(async () => {
  const workers = {};
  for (let i = 0; i < 10000; i++) workers["w" + i] = { s: "online", n: i % 2 ? "w2" : "w1", e: 1, d: 5, t: 10 };
  const now = new Date().toISOString();
  const row = { id: "web1", type: "counter", state: "running", node: "m1", epoch: 1, restarts: 0, created_at: now,
    progress: { done: 50000, total: 100000, fraction: 0.5, workers: 10000 } };
  let t = performance.now();
  window.__es.emit("snapshot", { row, job: { id: "web1", state: "running" }, workers, events: [], now });
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const snapshotMS = performance.now() - t;
  const changed = {};
  for (let i = 0; i < 500; i++) changed["w" + i * 20] = { s: "finished", n: "w1", e: 1, d: 10, t: 10 };
  t = performance.now();
  window.__es.emit("workers", changed);
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const updateMS = performance.now() - t;
  document.querySelector("#worker-q").value = "w9999";
  document.querySelector("#worker-find button").click();
  return { Cells: document.querySelectorAll("#grid .cell").length, Summary: document.querySelector("#worker-summary").textContent,
    Found: document.querySelector("#worker-info").textContent, SnapshotMS: snapshotMS, UpdateMS: updateMS };
})()`
