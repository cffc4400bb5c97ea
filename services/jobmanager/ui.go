package jobmanager

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// The console's templates and assets, built into the binary: nothing is
// fetched at run time and nothing but the Go toolchain builds it.
//
//go:embed console
var consoleFiles embed.FS

// uiRoot is where the web console is served.
const uiRoot = "/ui/"

// uiPageSize is the jobs page's page: each running job on it costs a read
// of its workers for the progress bar.
const uiPageSize = 50

// uiRequired is the role a console request needs: the login page and the
// static assets are open, pages read, posted forms submit.
func uiRequired(r *http.Request) Role {
	switch p := r.URL.Path; {
	case p == uiRoot+"login" || p == uiRoot+"logout" || strings.HasPrefix(p, uiRoot+"static/"):
		return RoleNone
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return RoleRead
	}
	return RoleSubmit
}

// uiDenied sends a browser that lacks rights for a page to the login page;
// other console requests get the coded error.
func uiDenied(w http.ResponseWriter, r *http.Request, e *api.Error) {
	if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
		why := "Log in with a token to open " + r.URL.Path + "."
		if e.Code == api.CodePermissionDenied {
			why = "Your token's role may not open " + r.URL.Path + "; log in with a stronger one."
		} else if _, err := r.Cookie(tokenCookie); err == nil {
			why = "Your token is no longer valid; log in again."
		}
		q := url.Values{"next": {r.URL.RequestURI()}, "why": {why}}
		http.Redirect(w, r, uiRoot+"login?"+q.Encode(), http.StatusSeeOther)
		return
	}
	obs.WriteJSON(w, e.Code.HTTPStatus(), api.Reply{Error: e})
}

// console serves the web console of one replica.
type console struct {
	s       *Service
	pages   map[string]*template.Template
	streams *streamBound
}

func (s *Service) newConsole() *console {
	c := &console{s: s, pages: map[string]*template.Template{},
		streams: &streamBound{max: s.cfg.UIMaxStreams, gauge: s.metrics.uiStreams, refused: s.metrics.uiRefused}}
	funcs := template.FuncMap{
		"age":      age,
		"pct":      func(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) },
		"terminal": func(st api.State) bool { return st.Terminal() },
		"json":     prettyJSON,
		"states":   func() []api.State { return allStates },
		"can":      func(r Role, need string) bool { n, _ := ParseRole(need); return r >= n },
	}
	for _, page := range []string{"login", "jobs", "job", "nodes", "submit"} {
		c.pages[page] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(consoleFiles, "console/layout.html", "console/"+page+".html"))
	}
	return c
}

var allStates = []api.State{api.StateCreated, api.StatePending, api.StateRunning, api.StateCanceling,
	api.StateFinished, api.StateFailed, api.StateCanceled}

// register adds the console's routes to the listener's mux.
func (c *console) register(mux *http.ServeMux) {
	static, _ := fs.Sub(consoleFiles, "console/static")
	mux.Handle("GET "+uiRoot+"static/", http.StripPrefix(uiRoot+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+uiRoot+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, uiRoot+"jobs", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+uiRoot+"login", c.loginPage)
	mux.HandleFunc("POST "+uiRoot+"login", c.login)
	mux.HandleFunc("POST "+uiRoot+"logout", c.logout)
	mux.HandleFunc("GET "+uiRoot+"jobs", c.jobsPage)
	mux.HandleFunc("GET "+uiRoot+"jobs/{id}", c.jobPage)
	mux.HandleFunc("POST "+uiRoot+"jobs/{id}/cancel", c.cancel)
	// A job's forwarded routes, for a browser logged in with the cookie.
	mux.HandleFunc("GET "+uiRoot+"jobs/{id}/api/{rest...}", c.s.forward)
	mux.HandleFunc("GET "+uiRoot+"jobs/{id}/route", func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimLeft(r.URL.Query().Get("path"), "/")
		http.Redirect(w, r, uiRoot+"jobs/"+url.PathEscape(r.PathValue("id"))+"/api/"+path, http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+uiRoot+"nodes", c.nodesPage)
	mux.HandleFunc("GET "+uiRoot+"submit", c.submitPage)
	mux.HandleFunc("POST "+uiRoot+"submit", c.submit)
	mux.HandleFunc("GET "+uiRoot+"live", c.live)
	mux.HandleFunc(uiRoot, func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "login", page{Title: "Not found", Error: api.Errorf(api.CodeNotFound, "no page %s", r.URL.Path)})
	})
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string
	Role  Role
	Error *api.Error
	Data  any
}

// render writes a page; the headers keep it from being framed, sniffed or
// running script from anywhere but the console's own files.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Role = callerOf(r.Context()).role
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.s.log.Error("console page failed", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error; the job manager logged it", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// sameOrigin guards the console's forms against cross-site posts: the
// cookie is SameSite=Strict already; the Origin (or Sec-Fetch-Site) must
// also say the form came from this listener.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	// No browser header at all: a script with the token in its hands.
	return r.Header.Get("Authorization") != ""
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: loginData{
		Next: safeNext(r.URL.Query().Get("next")), Why: r.URL.Query().Get("why"), NoTokens: len(c.s.auth.tokens) == 0}})
}

type loginData struct {
	Next, Why string
	NoTokens  bool
}

// safeNext keeps a redirect after login on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, uiRoot) || strings.Contains(next, "//") || strings.Contains(next, `\`) {
		return uiRoot + "jobs"
	}
	return next
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.FormValue("next"))
	if !sameOrigin(r) {
		c.render(w, r, http.StatusForbidden, "login", page{Title: "Log in", Error: api.Errorf(api.CodePermissionDenied, "the form was not posted from this console"), Data: loginData{Next: next}})
		return
	}
	token := strings.TrimSpace(r.FormValue("token"))
	probe := r.Clone(r.Context())
	probe.Header = http.Header{"Authorization": {"Bearer " + token}}
	if who, bad := c.s.auth.identify(probe); bad || !who.known {
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Error: api.Errorf(api.CodeUnauthenticated, "the token is not valid"),
			Data: loginData{Next: next, NoTokens: len(c.s.auth.tokens) == 0}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: token, Path: uiRoot, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: "", Path: uiRoot, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, uiRoot+"login", http.StatusSeeOther)
}

// jobRow is a job as the jobs table and the live updates show it.
type jobRow struct {
	ID       string     `json:"id"`
	Type     string     `json:"type"`
	State    api.State  `json:"state"`
	Node     string     `json:"node"`
	Epoch    uint64     `json:"epoch"`
	Restarts int        `json:"restarts"`
	Created  time.Time  `json:"created_at"`
	Progress *progress  `json:"progress,omitempty"`
	Error    *api.Error `json:"error,omitempty"`
}

// progress is sum(done)/sum(total) over the workers that report both.
type progress struct {
	Done     float64 `json:"done"`
	Total    float64 `json:"total"`
	Fraction float64 `json:"fraction"`
	Workers  int     `json:"workers"`
}

func rowOf(j *api.Job) jobRow {
	return jobRow{ID: j.ID, Type: j.Type, State: j.State, Node: j.Node, Epoch: j.Epoch, Restarts: j.Restarts,
		Created: j.CreatedAt, Error: j.Error}
}

// progressOf aggregates the workers' reported progress (nil if none reports).
func progressOf(ws []kvstate.WorkerEntry) *progress {
	p := progress{Workers: len(ws)}
	n := 0
	for _, e := range ws {
		if d, t, ok := api.StatusProgress(e.Record.Status); ok {
			p.Done, p.Total, n = p.Done+d, p.Total+t, n+1
		}
	}
	if n == 0 || p.Total <= 0 {
		return nil
	}
	p.Fraction = min(max(p.Done/p.Total, 0), 1)
	return &p
}

// withProgress fills the progress of a job that has workers to ask.
func (c *console) withProgress(ctx context.Context, row *jobRow) {
	if row.State == api.StateCreated || row.State == api.StatePending {
		return
	}
	ws, err := c.s.workerRecs.ListWorkers(ctx, row.ID)
	if err == nil {
		row.Progress = progressOf(ws)
	}
}

type jobsData struct {
	Rows                  []jobRow
	State, Type, Q, After string
	Next                  string
	IDs                   string
}

func (c *console) jobsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := jobsData{State: q.Get("state"), Type: q.Get("type"), Q: strings.TrimSpace(q.Get("q")), After: q.Get("after")}
	p := page{Title: "Jobs", Nav: "jobs", Data: &d}
	var jobs []api.Job
	space := c.s.space
	if d.Q != "" {
		rep, e := c.s.answer(r.Context(), space.APIGet(), jobHandler(c.s.get), wire.Marshal(api.GetRequest{ID: d.Q}))
		if p.Error = e; e == nil {
			jobs = []api.Job{*rep.(api.JobReply).Job}
		}
	} else {
		rep, e := c.s.answer(r.Context(), space.APIList(), func(ctx context.Context, b []byte) (any, error) {
			jobs, next, err := c.s.list(ctx, b, historyPageBytes)
			return api.ListReply{Jobs: jobs, Next: next}, err
		}, wire.Marshal(api.ListRequest{State: api.State(d.State), Type: d.Type, Limit: uiPageSize, After: d.After}))
		if p.Error = e; e == nil {
			jobs, d.Next = rep.(api.ListReply).Jobs, rep.(api.ListReply).Next
		}
	}
	ids := make([]string, 0, len(jobs))
	for i := range jobs {
		row := rowOf(&jobs[i])
		c.withProgress(r.Context(), &row)
		d.Rows = append(d.Rows, row)
		ids = append(ids, row.ID)
	}
	d.IDs = strings.Join(ids, ",")
	status := http.StatusOK
	if p.Error != nil {
		status = p.Error.Code.HTTPStatus()
	}
	c.render(w, r, status, "jobs", p)
}

type jobData struct {
	Job    *api.Job
	Row    jobRow
	Routes []string
}

func (c *console) jobPage(w http.ResponseWriter, r *http.Request) {
	rep, e := c.s.answer(r.Context(), c.s.space.APIGet(), jobHandler(c.s.get), wire.Marshal(api.GetRequest{ID: r.PathValue("id")}))
	if e != nil {
		c.render(w, r, e.Code.HTTPStatus(), "job", page{Title: "Job", Nav: "jobs", Error: e})
		return
	}
	j := rep.(api.JobReply).Job
	row := rowOf(j)
	c.withProgress(r.Context(), &row)
	c.render(w, r, http.StatusOK, "job", page{Title: "Job " + j.ID, Nav: "jobs", Data: jobData{Job: j, Row: row, Routes: c.routesOf(j)}})
}

// routesOf lists the GET routes a job's type serves that take no
// parameter, as its EndedRoutes registers them; the job page links them.
func (c *console) routesOf(j *api.Job) []string {
	jt, ok := c.s.deps.Types.Type(j.Type)
	if !ok || jt.EndedRoutes == nil {
		return nil
	}
	rec := &routeRecorder{}
	func() {
		defer func() { _ = recover() }() // job code: a panic costs the links only
		jt.EndedRoutes(*j, rec)
	}()
	sort.Strings(rec.paths)
	return slices.Compact(rec.paths)
}

// routeRecorder is a framework.Router that only notes GET patterns.
type routeRecorder struct{ paths []string }

func (r *routeRecorder) Handle(pattern string, _ http.Handler) { r.note(pattern) }
func (r *routeRecorder) HandleFunc(pattern string, _ func(http.ResponseWriter, *http.Request)) {
	r.note(pattern)
}
func (r *routeRecorder) note(pattern string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	if method == "GET" && strings.HasPrefix(path, "/") && !strings.ContainsAny(path, "{}") {
		r.paths = append(r.paths, strings.TrimPrefix(path, "/"))
	}
}

func (c *console) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !sameOrigin(r) {
		c.render(w, r, http.StatusForbidden, "job", page{Title: "Job", Nav: "jobs", Error: api.Errorf(api.CodePermissionDenied, "the form was not posted from this console")})
		return
	}
	_, e := c.s.answer(r.Context(), c.s.space.APICancel(), jobHandler(c.s.cancel), wire.Marshal(api.CancelRequest{ID: id}))
	if e != nil {
		c.render(w, r, e.Code.HTTPStatus(), "job", page{Title: "Job", Nav: "jobs", Error: e})
		return
	}
	http.Redirect(w, r, uiRoot+"jobs/"+url.PathEscape(id), http.StatusSeeOther)
}

type nodeRow struct {
	api.Node
	Jobs []string `json:"jobs"`
}

func (c *console) nodeRows(ctx context.Context) ([]nodeRow, *api.Error) {
	rep, err := c.s.replyNodes(ctx, nil)
	if err != nil {
		return nil, c.s.public(api.Reply{Error: api.AsError(err)}).Error
	}
	nodes := rep.(api.NodesReply).Nodes
	// The running masters of each job-master node (a bounded look: the
	// first 1000 running jobs).
	running, _, _ := c.s.list(ctx, wire.Marshal(api.ListRequest{State: api.StateRunning, Limit: 1000}), historyPageBytes)
	byNode := map[string][]string{}
	for _, j := range running {
		byNode[j.Node] = append(byNode[j.Node], j.ID)
	}
	rows := make([]nodeRow, 0, len(nodes))
	for _, n := range nodes {
		row := nodeRow{Node: n}
		if n.Kind == api.NodeJobMaster {
			row.Jobs = byNode[n.ID]
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(a, b int) bool {
		if rows[a].Kind != rows[b].Kind {
			return rows[a].Kind < rows[b].Kind
		}
		return rows[a].ID < rows[b].ID
	})
	return rows, nil
}

func (c *console) nodesPage(w http.ResponseWriter, r *http.Request) {
	rows, e := c.nodeRows(r.Context())
	status := http.StatusOK
	if e != nil {
		status = e.Code.HTTPStatus()
	}
	c.render(w, r, status, "nodes", page{Title: "Nodes", Nav: "nodes", Error: e, Data: rows})
}

// submitForm is the submit page's fields and, on error, which one is at fault.
type submitForm struct {
	ID, Type, Config, Selectors     string
	MaxRestarts, Backoff, MaxBackof string
	Types                           []string
	Field                           string // the field the error is about
}

func (c *console) submitPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "submit", page{Title: "Submit a job", Nav: "submit",
		Data: submitForm{Type: "counter", Config: `{"workers": 4, "target": 100}`, Types: c.s.deps.Types.Names()}})
}

func (c *console) submit(w http.ResponseWriter, r *http.Request) {
	f := submitForm{ID: strings.TrimSpace(r.FormValue("id")), Type: strings.TrimSpace(r.FormValue("type")),
		Config: r.FormValue("config"), Selectors: r.FormValue("selectors"), MaxRestarts: strings.TrimSpace(r.FormValue("max_restarts")),
		Backoff: strings.TrimSpace(r.FormValue("initial_backoff_ms")), MaxBackof: strings.TrimSpace(r.FormValue("max_backoff_ms")),
		Types: c.s.deps.Types.Names()}
	fail := func(field string, e *api.Error) {
		f.Field = field
		c.render(w, r, e.Code.HTTPStatus(), "submit", page{Title: "Submit a job", Nav: "submit", Error: e, Data: f})
	}
	if !sameOrigin(r) {
		fail("", api.Errorf(api.CodePermissionDenied, "the form was not posted from this console"))
		return
	}
	spec := api.Spec{ID: f.ID, Type: f.Type}
	if strings.TrimSpace(f.Config) != "" {
		spec.Config = json.RawMessage(f.Config)
	}
	if sel := strings.TrimSpace(f.Selectors); sel != "" {
		spec.Selectors = map[string]string{}
		for _, kv := range strings.FieldsFunc(sel, func(r rune) bool { return r == ',' || r == '\n' }) {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || k == "" {
				fail("selectors", api.Errorf(api.CodeInvalidArgument, "selectors: %q is not key=value", strings.TrimSpace(kv)))
				return
			}
			spec.Selectors[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if f.MaxRestarts != "" || f.Backoff != "" || f.MaxBackof != "" {
		spec.Restart = &api.RestartPolicy{}
		for _, n := range []struct {
			field, val string
			set        func(int64)
		}{
			{"max_restarts", f.MaxRestarts, func(v int64) { i := int(v); spec.Restart.MaxRestarts = &i }},
			{"initial_backoff_ms", f.Backoff, func(v int64) { spec.Restart.InitialBackoff = v }},
			{"max_backoff_ms", f.MaxBackof, func(v int64) { spec.Restart.MaxBackoff = v }},
		} {
			if n.val == "" {
				continue
			}
			v, err := strconv.ParseInt(n.val, 10, 32)
			if err != nil {
				fail(n.field, api.Errorf(api.CodeInvalidArgument, "%s: %q is not a whole number", n.field, n.val))
				return
			}
			n.set(v)
		}
	}
	body, err := json.Marshal(spec)
	if err != nil { // config is not JSON: json.RawMessage refuses to marshal it
		fail("config", api.Errorf(api.CodeInvalidArgument, "config is not valid JSON"))
		return
	}
	rep, e := c.s.answer(r.Context(), c.s.space.APISubmit(), jobHandler(c.s.submit), body)
	if e != nil {
		fail(fieldOf(e), e)
		return
	}
	http.Redirect(w, r, uiRoot+"jobs/"+url.PathEscape(rep.(api.JobReply).Job.ID), http.StatusSeeOther)
}

// fieldOf guesses which form field a submit error is about from its code
// and message, so the page shows it next to that field.
func fieldOf(e *api.Error) string {
	m := strings.ToLower(e.Message)
	switch {
	case e.Code == api.CodeUnknownType:
		return "type"
	case e.Code == api.CodeAlreadyExists:
		return "id"
	case strings.Contains(m, "selector"):
		return "selectors"
	case strings.Contains(m, "restart") || strings.Contains(m, "backoff"):
		return "max_restarts"
	case strings.Contains(m, "job id") || strings.Contains(m, "invalid job"):
		return "id"
	case strings.Contains(m, "type"):
		return "type"
	}
	return "config"
}

// age is how long ago t was, in the largest whole unit.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// prettyJSON indents a job's detail or config for the folded view.
func prettyJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
