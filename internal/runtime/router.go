package runtime

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// router is the Router a master registers its routes on.
type router struct{ mux *http.ServeMux }

func newRouter() *router { return &router{mux: http.NewServeMux()} }

func (r *router) Handle(pattern string, h http.Handler) { r.mux.Handle(pattern, h) }
func (r *router) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	r.mux.HandleFunc(pattern, h)
}

// recorder is a minimal in-memory ResponseWriter.
type recorder struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// serveHTTP answers a forwarded HTTP request; the handler runs on the
// master's loop so job code needs no locks.
func (m *MasterRuntime) serveHTTP(rt *router, msg *nats.Msg) {
	var req wire.HTTPRequest
	reply := func(resp wire.HTTPResponse) { _ = msg.Respond(wire.Marshal(resp)) }
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		reply(wire.HTTPResponse{Status: http.StatusBadRequest, Body: []byte(`{"error":{"code":"invalid_argument","message":"malformed forwarded request"}}`)})
		return
	}
	u := &url.URL{Path: req.Path, RawQuery: req.Query}
	hr, err := http.NewRequest(req.Method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		reply(wire.HTTPResponse{Status: http.StatusBadRequest})
		return
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	rec := &recorder{header: http.Header{}}
	done := make(chan struct{})
	m.post(func() {
		defer close(done)
		_, pattern := rt.mux.Handler(hr)
		// A job's handler that panics or hangs fails its master, never
		// the node; the caller gets the API's error, not the panic.
		// The job's handler writes to its own recorder: an abandoned one
		// must not share a variable with the reply.
		jobRec := rec
		if err := m.guard("route "+req.Method+" "+req.Path, func() error { rt.mux.ServeHTTP(jobRec, hr); return nil }); err != nil {
			rec = &recorder{header: http.Header{}}
			writeError(rec, http.StatusInternalServerError, api.CodeInternal, "the job's handler for %s %s failed", req.Method, req.Path)
			m.requestExit(framework.ExitFailed, err, nil)
			return
		}
		if pattern != "" {
			return
		}
		// No route: answer in the API's error shape, not ServeMux's text.
		switch rec.status {
		case http.StatusNotFound:
			*rec = recorder{header: http.Header{}}
			writeError(rec, http.StatusNotFound, api.CodeNotFound, "job %s has no route %s %s", m.job.ID, req.Method, req.Path)
		case http.StatusMethodNotAllowed:
			allow := rec.header.Values("Allow")
			*rec = recorder{header: http.Header{"Allow": allow}}
			writeError(rec, http.StatusMethodNotAllowed, api.CodeInvalidArgument,
				"job %s does not serve %s %s", m.job.ID, req.Method, req.Path)
		}
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		reply(wire.HTTPResponse{Status: http.StatusGatewayTimeout, Header: jsonHeader(),
			Body: wire.Marshal(api.Reply{Error: api.Errorf(api.CodeUnavailable, "master of job %s did not answer within 5s", m.job.ID)})})
		return
	case <-m.stopCh:
		return
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	reply(wire.HTTPResponse{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()})
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// writeError answers with the API's error envelope.
func writeError(w http.ResponseWriter, status int, code api.Code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(wire.Marshal(api.Reply{Error: api.Errorf(code, format, args...)}))
}
