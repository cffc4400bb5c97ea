package jobmanager_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/services/jobmanager"
)

// browser is an HTTP client with a cookie jar, as a browser is to the console.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a form as the console's own page would (same Origin), or
// from another site.
func (b *browser) post(path, origin string, form url.Values) (int, string, *url.URL) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Request.URL
}

func (b *browser) login(token string) {
	b.t.Helper()
	if code, body, _ := b.post("/ui/login", b.base, url.Values{"token": {token}, "next": {"/ui/jobs"}}); code != 200 || !strings.Contains(body, "<h1>Jobs</h1>") {
		b.t.Fatalf("login: %d %.300s", code, body)
	}
}

// TestConsolePagesAndRoles drives the console as a browser would, with a
// read token and a submit token: pages, forms, coded errors next to the
// field, and what each role may do.
func TestConsolePagesAndRoles(t *testing.T) {
	sys, base := authSystem(t)
	ctx := context.Background()

	anon := newBrowser(t, base)
	if code, body := anon.get("/ui/jobs"); code != 200 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("anonymous: want the login page, got %d %.200s", code, body)
	}
	if code, body, _ := anon.post("/ui/login", base, url.Values{"token": {"wrong-token-0123456789"}}); code != 401 || !strings.Contains(body, "unauthenticated") {
		t.Fatalf("bad token: %d %.200s", code, body)
	}

	// A login never sends the browser off the console.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/ui/..//evil", `/ui/\evil.example`, "/api/v1/jobs"} {
		b := newBrowser(t, base)
		if code, _, at := b.post("/ui/login", base, url.Values{"token": {readToken}, "next": {next}}); code != 200 || at.Host != strings.TrimPrefix(base, "http://") || at.Path != "/ui/jobs" {
			t.Errorf("login with next=%q landed on %s (%d)", next, at, code)
		}
	}
	if code, _, _ := anon.post("/ui/login", "https://evil.example", url.Values{"token": {readToken}}); code != 403 {
		t.Errorf("a login posted from another site: %d, want 403", code)
	}

	reader := newBrowser(t, base)
	reader.login(readToken)
	submitter := newBrowser(t, base)
	submitter.login(submitToken)

	// Submit through the form: errors come back next to their field, with
	// what was typed kept; a good one lands on the job's page.
	form := func(typ, config string) url.Values {
		return url.Values{"type": {typ}, "config": {config}, "id": {""}, "selectors": {""}}
	}
	for _, tt := range []struct {
		name   string
		form   url.Values
		status int
		field  string
		code   api.Code
	}{
		{"unknown type", form("nope", "{}"), 422, "type", api.CodeUnknownType},
		{"config not JSON", form("counter", "{workers:"), 400, "config", api.CodeInvalidArgument},
		{"config refused by the type", form("counter", `{"workers":-1}`), 400, "config", api.CodeInvalidArgument},
		{"bad selectors", url.Values{"type": {"counter"}, "selectors": {"zone"}}, 400, "selectors", api.CodeInvalidArgument},
		{"bad restarts", url.Values{"type": {"counter"}, "max_restarts": {"many"}}, 400, "max_restarts", api.CodeInvalidArgument},
		{"bad id", url.Values{"type": {"counter"}, "id": {"a.b"}}, 400, "id", api.CodeInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := submitter.post("/ui/submit", base, tt.form)
			errID := "err-" + tt.field
			if tt.field == "max_restarts" {
				errID = "err-restart"
			}
			if code != tt.status || !strings.Contains(body, `id="`+errID+`"`) || !strings.Contains(body, string(tt.code)) ||
				!strings.Contains(body, `aria-invalid="true"`) {
				t.Fatalf("%d, want %d with %s next to %s; %.600s", code, tt.status, tt.code, tt.field, body)
			}
		})
	}
	code, body, at := submitter.post("/ui/submit", base, url.Values{"type": {"counter"}, "id": {"ui1"},
		"config": {`{"workers":3,"target":1000000,"interval_ms":10}`}, "selectors": {""}})
	if code != 200 || at.Path != "/ui/jobs/ui1" || !strings.Contains(body, `id="cancel"`) {
		t.Fatalf("submit: %d at %s, want the job's page with a cancel button; %.300s", code, at, body)
	}

	natstest.Eventually(t, 10*time.Second, "ui1 running", func() bool {
		j, _ := sys.Client.Get(ctx, "ui1")
		return j != nil && j.State == api.StateRunning
	})
	// A reader sees the pages but no forms that change anything, and may
	// not post them.
	for path, want := range map[string]string{
		"/ui/jobs": `href="/ui/jobs/ui1"`, "/ui/jobs?state=running": "ui1", "/ui/jobs?q=ui1": "ui1",
		"/ui/jobs/ui1": `id="timeline"`, "/ui/nodes": "m0", "/ui/": "<h1>Jobs</h1>",
	} {
		code, body := reader.get(path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("reader GET %s: %d, want %q in %.300s", path, code, want, body)
		}
		if strings.Contains(body, `id="cancel"`) || strings.Contains(body, `href="/ui/submit"`) {
			t.Errorf("reader GET %s shows forms of the submit role", path)
		}
	}
	if code, body := reader.get("/ui/jobs?q=missing"); code != 404 || !strings.Contains(body, "not_found") {
		t.Errorf("search for a missing job: %d %.200s", code, body)
	}
	if code, body := reader.get("/ui/jobs?state=sleeping"); code != 400 || !strings.Contains(body, "invalid_argument") {
		t.Errorf("a bad state filter: %d %.200s", code, body)
	}
	if code, _, _ := reader.post("/ui/jobs/ui1/cancel", base, nil); code != 403 {
		t.Fatalf("reader cancel: %d, want 403", code)
	}
	if code, _, _ := reader.post("/ui/submit", base, form("counter", "{}")); code != 403 {
		t.Fatalf("reader submit: %d, want 403", code)
	}
	// A form posted from another site carries the cookie in no modern
	// browser (SameSite=Strict); if one does, the Origin gives it away.
	if code, _, _ := submitter.post("/ui/jobs/ui1/cancel", "https://evil.example", nil); code != 403 {
		t.Fatalf("cross-site cancel: %d, want 403", code)
	}
	if j, _ := sys.Client.Get(ctx, "ui1"); j == nil || j.State.Terminal() || j.State == api.StateCanceling {
		t.Fatalf("refused cancels changed the job: %+v", j)
	}
	// The job's forwarded route, through the console's cookie.
	natstest.Eventually(t, 10*time.Second, "ui1's /status through the console", func() bool {
		code, body := reader.get("/ui/jobs/ui1/api/status")
		return code == 200 && strings.Contains(body, `"workers"`)
	})
	// The cookie is the console's only: the API wants the header.
	if code, _ := reader.get("/api/v1/jobs/ui1"); code != 401 {
		t.Fatalf("the console's cookie opened the API: %d", code)
	}

	code, _, at = submitter.post("/ui/jobs/ui1/cancel", base, nil)
	if code != 200 || at.Path != "/ui/jobs/ui1" {
		t.Fatalf("cancel: %d at %s", code, at)
	}
	if j, err := sys.WaitJob("ui1", 20*time.Second); err != nil || j.State != api.StateCanceled {
		t.Fatalf("ui1 after cancel: %+v %v", j, err)
	}
	if code, _, _ := submitter.post("/ui/logout", base, nil); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if _, body := submitter.get("/ui/jobs"); !strings.Contains(body, `name="token"`) {
		t.Fatal("after logout the console still opens")
	}
}

// TestConsoleLiveStreamsAreBoundedAndCleaned: a job page's stream sends
// the job's snapshot and its events as they happen; one stream more than
// DROVER_UI_MAX_STREAMS is refused; every closed stream gives back its
// slot, its NATS subscription and its goroutines.
func TestConsoleLiveStreamsAreBoundedAndCleaned(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	addr := testsys.FreeAddr(t)
	const bound = 3
	jm := sys.AddJobManagerWith("jm", func(c *jobmanager.Config) { c.HTTPAddr, c.UIMaxStreams = addr, bound })
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	base := "http://" + addr
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "live1", Type: "counter",
		Config: []byte(`{"workers":2,"target":1000000,"interval_ms":20}`)}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "live1 running", func() bool {
		j, _ := sys.Client.Get(context.Background(), "live1")
		return j != nil && j.State == api.StateRunning
	})
	svc := jm.Service.(*jobmanager.Service)
	subsBefore := jm.NC.NumSubscriptions()
	goroutinesBefore := runtime.NumGoroutine()

	type stream struct {
		cancel context.CancelFunc
		lines  chan string
	}
	open := func(query string) (*stream, int) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/ui/live?"+query, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			resp.Body.Close()
			cancel()
			return nil, resp.StatusCode
		}
		s := &stream{cancel: cancel, lines: make(chan string, 4096)}
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				select {
				case s.lines <- sc.Text():
				default:
				}
			}
			close(s.lines)
		}()
		return s, 200
	}
	waitLine := func(s *stream, prefix string) string {
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-s.lines:
				if !ok {
					t.Fatalf("stream ended waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q on the stream", prefix)
			}
		}
	}

	var streams []*stream
	for i := range bound {
		query := "job=live1"
		if i == 1 {
			query = "jobs=live1"
		}
		s, code := open(query)
		if code != 200 {
			t.Fatalf("stream %d: %d", i, code)
		}
		streams = append(streams, s)
	}
	waitLine(streams[0], "event: snapshot")
	if l := waitLine(streams[0], "data: "); !strings.Contains(l, `"live1"`) || !strings.Contains(l, `"events":[{`) {
		t.Fatalf("snapshot without the job or its history: %.300s", l)
	}
	waitLine(streams[1], "event: row")
	if _, code := open("job=live1"); code != 503 {
		t.Fatalf("stream %d of a bound of %d: %d, want 503", bound+1, bound, code)
	}
	for _, q := range []string{"job=a.b", "jobs=x,%3E", "", "job=" + strings.Repeat("a", 65)} {
		if s, code := open(q); code != 400 {
			if s != nil {
				s.cancel()
			}
			t.Errorf("hostile stream query %q: %d, want 400", q, code)
		}
	}
	// A live event reaches the job page: cancel the job.
	if _, err := sys.Client.Cancel(context.Background(), "live1"); err != nil {
		t.Fatal(err)
	}
	// State events of the job before the cancel (its master's assignment,
	// if the snapshot came first) may come ahead; the cancel's follows.
	for {
		l := waitLine(streams[0], "data: {\"job\":\"live1\",\"kind\":\"state\"")
		if strings.Contains(l, "cancel") {
			break
		}
		if !strings.Contains(l, `"state":"running"`) && !strings.Contains(l, `"state":"pending"`) {
			t.Fatalf("the cancel event: %s", l)
		}
	}

	for _, s := range streams {
		s.cancel()
	}
	natstest.Eventually(t, 10*time.Second, "every stream's slot, subscription and goroutines given back", func() bool {
		http.DefaultClient.CloseIdleConnections()
		ok := svc.LiveStreams() == 0 && jm.NC.NumSubscriptions() == subsBefore && runtime.NumGoroutine() <= goroutinesBefore+2
		if !ok {
			t.Logf("streams %d, subscriptions %d (before %d), goroutines %d (before %d)", svc.LiveStreams(),
				jm.NC.NumSubscriptions(), subsBefore, runtime.NumGoroutine(), goroutinesBefore)
		}
		return ok
	})
	// The bound holds for the next ones: all slots are free again.
	for i := range bound {
		s, code := open("nodes=1")
		if code != 200 {
			t.Fatalf("stream %d after the cleanup: %d", i, code)
		}
		defer s.cancel()
	}
}
