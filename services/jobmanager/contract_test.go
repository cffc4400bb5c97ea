package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

// contract validates replies against docs/openapi.yaml.
type contract struct {
	t   *testing.T
	doc *openapi3.T
	// seen records "METHOD path status" of every reply checked, so the test
	// can require each documented error status of the core routes.
	seen map[string]bool
}

func loadContract(t *testing.T) *contract {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return &contract{t: t, doc: doc, seen: map[string]bool{}}
}

// check validates one reply (status, headers, body) as the answer of the
// documented operation method+path; the status must be documented.
func (c *contract) check(what, method, path string, status int, header http.Header, body []byte) {
	c.t.Helper()
	item := c.doc.Paths.Value(path)
	if item == nil {
		c.t.Fatalf("%s: %s is not in docs/openapi.yaml", what, path)
	}
	op := item.GetOperation(method)
	if op == nil {
		c.t.Fatalf("%s: %s %s is not in docs/openapi.yaml", what, method, path)
	}
	req, _ := http.NewRequest(method, "http://drover"+path, nil)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req,
			Route: &routers.Route{Spec: c.doc, Path: path, PathItem: item, Method: method, Operation: op}},
		Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s: %s %s answered %d %s\nwhich docs/openapi.yaml does not allow: %v", what, method, path, status, body, err)
	}
	c.seen[fmt.Sprintf("%s %s %d", method, path, status)] = true
}

// httpCase is one HTTP request and the status it must get.
type httpCase struct {
	method, url, spec, body, token string
	status                         int
}

// natsCase is one NATS request, checked against the schema of the HTTP
// operation it mirrors, with the status its code maps to.
type natsCase struct {
	subject      string
	body         string
	method, spec string
	status       int
}

// TestRepliesFollowTheOpenAPIDocument runs real HTTP and NATS requests of
// every endpoint — successes, and each error the endpoint can answer —
// through the schemas of docs/openapi.yaml, so a reply can not drift from
// the document again. Empty lists come first, while the system is empty:
// their arrays must be present.
func TestRepliesFollowTheOpenAPIDocument(t *testing.T) {
	c := loadContract(t)
	sys := testsys.Start(t, builtin.TestRegistry())
	sys.HTTPTokens, sys.HTTPAnonymous = "admin:admin-token-0123456789,read:read-token-0123456789", "none"
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm", addr)
	sys.WaitReady(0, 0)
	base := "http://" + addr
	sp := sys.Client.Space()
	big := `{"type":"counter","config":{"pad":"` + strings.Repeat("x", api.MaxPayload) + `"}}`

	doHTTP := func(hc httpCase) {
		t.Helper()
		req, err := http.NewRequest(hc.method, base+hc.url, strings.NewReader(hc.body))
		if err != nil {
			t.Fatal(err)
		}
		tok := hc.token
		if tok == "" {
			tok = "admin-token-0123456789"
		}
		if tok != "-" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != hc.status {
			t.Errorf("%s %s: %d %s, want %d", hc.method, hc.url, resp.StatusCode, b, hc.status)
		}
		c.check("HTTP "+hc.method+" "+hc.url, hc.method, hc.spec, resp.StatusCode, resp.Header, b)
	}
	doNATS := func(nc natsCase) {
		t.Helper()
		msg, err := sys.Client.Conn().Request(nc.subject, []byte(nc.body), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", nc.subject, err)
		}
		status := http.StatusOK
		var rep api.Reply
		if json.Unmarshal(msg.Data, &rep) == nil && rep.Error != nil {
			status = rep.Error.Code.HTTPStatus()
		}
		if status != nc.status {
			t.Errorf("NATS %s %s: %s, want status %d", nc.subject, nc.body, msg.Data, nc.status)
		}
		c.check("NATS "+nc.subject+" "+nc.body, nc.method, nc.spec, status,
			http.Header{"Content-Type": {"application/json"}}, msg.Data)
	}

	// Empty system: every list is present and empty.
	for _, hc := range []httpCase{
		{"GET", "/api/v1/jobs", "/api/v1/jobs", "", "", 200},
		{"GET", "/api/v1/nodes", "/api/v1/nodes", "", "", 200},
		{"GET", "/api/v1/jobs/none/events", "/api/v1/jobs/{id}/events", "", "", 200},
	} {
		doHTTP(hc)
	}
	for _, nc := range []natsCase{
		{sp.APIList(), `{}`, "GET", "/api/v1/jobs", 200},
		{sp.APINodes(), `{}`, "GET", "/api/v1/nodes", 200},
		{sp.APIEvents(), `{"id":"none"}`, "GET", "/api/v1/jobs/{id}/events", 200},
	} {
		doNATS(nc)
	}
	for subj, want := range map[string]string{sp.APIList(): `"jobs":[]`, sp.APINodes(): `{"nodes":[]}`} {
		msg, err := sys.Client.Conn().Request(subj, []byte(`{}`), 5*time.Second)
		if err != nil || !strings.Contains(string(msg.Data), want) {
			t.Errorf("%s on an empty system: %s %v, want %s", subj, msg.Data, err, want)
		}
	}

	// A job with a master (running) and one without (pending: no node can
	// take it yet), then every endpoint.
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "held", Type: "counter"}); err != nil {
		t.Fatal(err)
	}
	for _, hc := range []httpCase{
		{"POST", "/api/v1/jobs", "/api/v1/jobs", `{"id":"c1","type":"counter","config":{"workers":1,"target":3}}`, "", 200},
		{"POST", "/api/v1/jobs", "/api/v1/jobs", `{"id":"c1","type":"counter","config":{"workers":2}}`, "", 409},
		{"POST", "/api/v1/jobs", "/api/v1/jobs", `{"type":`, "", 400},
		{"POST", "/api/v1/jobs", "/api/v1/jobs", `{"type":"nope"}`, "", 422},
		{"POST", "/api/v1/jobs", "/api/v1/jobs", big, "", 413},
		{"POST", "/api/v1/jobs", "/api/v1/jobs", `{"type":"counter"}`, "-", 401},
		{"POST", "/api/v1/jobs", "/api/v1/jobs", `{"type":"counter"}`, "read-token-0123456789", 403},
		{"GET", "/api/v1/jobs", "/api/v1/jobs", "", "read-token-0123456789", 200},
		{"GET", "/api/v1/jobs?state=sleeping", "/api/v1/jobs", "", "", 400},
		{"GET", "/api/v1/jobs?limit=x", "/api/v1/jobs", "", "", 400},
		{"GET", "/api/v1/jobs", "/api/v1/jobs", "", "-", 401},
		{"GET", "/api/v1/jobs/c1", "/api/v1/jobs/{id}", "", "", 200},
		{"GET", "/api/v1/jobs/missing", "/api/v1/jobs/{id}", "", "", 404},
		{"GET", "/api/v1/jobs/a%20b", "/api/v1/jobs/{id}", "", "", 400},
		{"GET", "/api/v1/jobs/c1/workers", "/api/v1/jobs/{id}/workers", "", "", 200},
		{"GET", "/api/v1/jobs/missing/workers", "/api/v1/jobs/{id}/workers", "", "", 404},
		{"GET", "/api/v1/jobs/a%20b/workers", "/api/v1/jobs/{id}/workers", "", "", 400},
		{"GET", "/api/v1/jobs/c1/events", "/api/v1/jobs/{id}/events", "", "", 200},
		{"GET", "/api/v1/jobs/c1/events?since=soon", "/api/v1/jobs/{id}/events", "", "", 400},
		{"GET", "/api/v1/jobs/held/status", "/api/v1/jobs/{id}/{route}", "", "", 412},
		{"GET", "/api/v1/jobs/missing/status", "/api/v1/jobs/{id}/{route}", "", "", 404},
		{"POST", "/api/v1/jobs/held/cancel", "/api/v1/jobs/{id}/cancel", "", "", 200},
		{"POST", "/api/v1/jobs/missing/cancel", "/api/v1/jobs/{id}/cancel", "", "", 404},
		{"POST", "/api/v1/jobs/a%20b/cancel", "/api/v1/jobs/{id}/cancel", "", "", 400},
		{"DELETE", "/api/v1/jobs/held", "/api/v1/jobs/{id}", "", "", 200},
		{"DELETE", "/api/v1/jobs/c1", "/api/v1/jobs/{id}", "", "", 412},
		{"DELETE", "/api/v1/jobs/missing", "/api/v1/jobs/{id}", "", "", 404},
		{"DELETE", "/api/v1/jobs/a%20b", "/api/v1/jobs/{id}", "", "", 400},
		{"DELETE", "/api/v1/jobs/c1", "/api/v1/jobs/{id}", "", "-", 401},
		{"DELETE", "/api/v1/jobs/c1", "/api/v1/jobs/{id}", "", "read-token-0123456789", 403},
		{"GET", "/api/v1/jobs/c1", "/api/v1/jobs/{id}", "", "-", 401},
		{"GET", "/api/v1/jobs/c1/workers", "/api/v1/jobs/{id}/workers", "", "-", 401},
		{"GET", "/api/v1/jobs/c1/events", "/api/v1/jobs/{id}/events", "", "-", 401},
		{"GET", "/api/v1/nodes", "/api/v1/nodes", "", "-", 401},
		{"POST", "/api/v1/jobs/c1/cancel", "/api/v1/jobs/{id}/cancel", "", "-", 401},
		{"POST", "/api/v1/jobs/c1/cancel", "/api/v1/jobs/{id}/cancel", "", "read-token-0123456789", 403},
		{"GET", "/healthz", "/healthz", "", "", 200},
		{"GET", "/readyz", "/readyz", "", "", 200},
	} {
		doHTTP(hc)
	}
	for _, nc := range []natsCase{
		{sp.APISubmit(), `{"id":"n1","type":"counter"}`, "POST", "/api/v1/jobs", 200},
		{sp.APISubmit(), `{"id":"n1","type":"counter","config":{"workers":3}}`, "POST", "/api/v1/jobs", 409},
		{sp.APISubmit(), `{"type":"counter","colour":"red"}`, "POST", "/api/v1/jobs", 400},
		{sp.APISubmit(), `{"type":"nope"}`, "POST", "/api/v1/jobs", 422},
		{sp.APISubmit(), big, "POST", "/api/v1/jobs", 413},
		{sp.APIGet(), `{"id":"n1"}`, "GET", "/api/v1/jobs/{id}", 200},
		{sp.APIGet(), `{"id":"missing"}`, "GET", "/api/v1/jobs/{id}", 404},
		{sp.APIGet(), `{"id":"a.b"}`, "GET", "/api/v1/jobs/{id}", 400},
		{sp.APIList(), `{"limit":2}`, "GET", "/api/v1/jobs", 200},
		{sp.APIList(), `{"limit":-1}`, "GET", "/api/v1/jobs", 400},
		{sp.APICancel(), `{"id":"n1"}`, "POST", "/api/v1/jobs/{id}/cancel", 200},
		{sp.APICancel(), `{"id":"missing"}`, "POST", "/api/v1/jobs/{id}/cancel", 404},
		{sp.APICancel(), `{"id":">"}`, "POST", "/api/v1/jobs/{id}/cancel", 400},
		{sp.APIDelete(), `{"id":"missing"}`, "DELETE", "/api/v1/jobs/{id}", 404},
		{sp.APIWorkers(), `{"id":"n1"}`, "GET", "/api/v1/jobs/{id}/workers", 200},
		{sp.APIWorkers(), `{"id":"missing"}`, "GET", "/api/v1/jobs/{id}/workers", 404},
		{sp.APIWorkers(), `{"id":"*"}`, "GET", "/api/v1/jobs/{id}/workers", 400},
		{sp.APIEvents(), `{"id":"n1"}`, "GET", "/api/v1/jobs/{id}/events", 200},
		{sp.APIEvents(), `{"id":"n1","limit":5000}`, "GET", "/api/v1/jobs/{id}/events", 400},
		{sp.APINodes(), `{}`, "GET", "/api/v1/nodes", 200},
		{sp.APINodes(), `{"kind":1}`, "GET", "/api/v1/nodes", 400},
	} {
		doNATS(nc)
	}

	// With nodes: the running job's forwarded route and workers, the nodes.
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	if j, err := sys.WaitJob("c1", 30*time.Second); err != nil || j.State != api.StateFinished {
		t.Fatalf("c1: %v %v", j, err)
	}
	doHTTP(httpCase{"GET", "/api/v1/nodes", "/api/v1/nodes", "", "", 200})
	doHTTP(httpCase{"GET", "/api/v1/jobs/c1/workers", "/api/v1/jobs/{id}/workers", "", "", 200})
	doHTTP(httpCase{"GET", "/api/v1/jobs/c1/events", "/api/v1/jobs/{id}/events", "", "", 200})
	doHTTP(httpCase{"GET", "/api/v1/jobs/c1", "/api/v1/jobs/{id}", "", "", 200})
	doHTTP(httpCase{"GET", "/api/v1/jobs", "/api/v1/jobs", "", "", 200})
	doNATS(natsCase{sp.APINodes(), `{}`, "GET", "/api/v1/nodes", 200})

	// Every error status documented for the API's own routes was produced
	// above: 503 aside (it needs NATS trouble, which other tests cause), and
	// 403 on reads (read is the weakest role a token can have, so a GET is
	// never forbidden, only unauthenticated).
	for _, path := range []string{"/api/v1/jobs", "/api/v1/jobs/{id}", "/api/v1/jobs/{id}/cancel", "/api/v1/jobs/{id}/workers", "/api/v1/jobs/{id}/events", "/api/v1/nodes"} {
		item := c.doc.Paths.Value(path)
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				key := method + " " + path + " " + code
				if code != "503" && code != "504" && !(method == "GET" && code == "403") && !c.seen[key] {
					t.Errorf("no reply checked for %s", key)
				}
			}
		}
	}
}
