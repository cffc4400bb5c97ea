package framework

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/wire"
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
		rt.mux.ServeHTTP(rec, hr)
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		reply(wire.HTTPResponse{Status: http.StatusGatewayTimeout})
		return
	case <-m.stopCh:
		return
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	reply(wire.HTTPResponse{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()})
}
