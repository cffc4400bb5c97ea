package jobmanager

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// newHTTP builds the operator listener with the HTTP mirror of the v1 API.
// It answers with the same codes as the NATS API, mapped to HTTP statuses.
func (s *Service) newHTTP() *obs.Server {
	srv := obs.NewServer(s.deps.Registry, map[string]obs.Check{
		"nats": func(context.Context) error {
			if !s.deps.NC.IsConnected() {
				return api.Errorf(api.CodeUnavailable, "not connected to NATS")
			}
			return nil
		},
		"state": func(ctx context.Context) error {
			if s.conn == nil {
				return api.Errorf(api.CodeUnavailable, "state store not open")
			}
			if !s.deps.NC.IsConnected() {
				return api.Errorf(api.CodeUnavailable, "no NATS connection to reach the buckets")
			}
			return s.conn.Ping(ctx)
		},
	}, func() map[string]any { return map[string]any{"leader": s.Leading(), "replica": s.id} })
	mux := srv.Mux
	allow := map[string][]string{} // path → its methods
	var paths []string
	for _, rt := range s.apiRoutes() {
		mux.HandleFunc(rt.pattern, rt.handler)
		if method, path, ok := strings.Cut(rt.pattern, " "); ok {
			if allow[path] == nil {
				paths = append(paths, path)
			}
			allow[path] = append(allow[path], method)
		}
	}
	// Another method on a route's path is 405, not a forward to the
	// master nor ServeMux's redirect or plain-text answer.
	for _, path := range paths {
		mux.HandleFunc(path, methodNotAllowed(allow[path]))
	}
	mux.HandleFunc(apiRoot, func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeNotFound, "no API route %s %s", r.Method, r.URL.Path)})
	})
	s.console = s.newConsole()
	s.console.register(mux)
	srv.Handler = s.auth.guard(mux)
	srv.CertFile, srv.KeyFile = s.cfg.HTTPTLSCert, s.cfg.HTTPTLSKey
	return srv
}

// apiRoot catches every /api/ request no route matched.
const apiRoot = "/api/"

// route is one HTTP API route; docs/openapi.yaml describes each of them
// (a test keeps the two the same).
type route struct {
	pattern string
	handler http.HandlerFunc
}

// apiRoutes are the HTTP mirror of the v1 API. Replies and codes are the
// NATS API's; each is counted as the NATS request it mirrors.
func (s *Service) apiRoutes() []route {
	// The store opens in Run; routes read its namespace when they answer.
	space := func() topics.Space { return s.space }
	serve := func(w http.ResponseWriter, r *http.Request, subject string, h handler, body []byte) {
		rep, e := s.answer(r.Context(), subject, h, body)
		if e != nil {
			writeReply(w, api.Reply{Error: e})
			return
		}
		obs.WriteJSON(w, http.StatusOK, rep)
	}
	badQuery := func(w http.ResponseWriter, subject string, e *api.Error) {
		s.countReply(subject, e)
		writeReply(w, api.Reply{Error: e})
	}
	return []route{
		{"POST /api/v1/jobs", s.httpBody(func(w http.ResponseWriter, r *http.Request, b []byte) {
			serve(w, r, space().APISubmit(), jobHandler(s.submit), b)
		})},
		{"GET /api/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			req := api.ListRequest{State: api.State(q.Get("state")), Type: q.Get("type"), After: q.Get("after")}
			if d := q.Get("detail"); d != "" {
				v, err := strconv.ParseBool(d)
				if err != nil {
					badQuery(w, space().APIList(), api.Errorf(api.CodeInvalidArgument, "detail %q is not true or false", d))
					return
				}
				req.Detail = v
			}
			n, e := queryLimit(q)
			if e != nil {
				badQuery(w, space().APIList(), e)
				return
			}
			req.Limit = n
			serve(w, r, space().APIList(), s.replyList, wire.Marshal(req))
		}},
		{"GET /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, space().APIGet(), jobHandler(s.get), wire.Marshal(api.GetRequest{ID: r.PathValue("id")}))
		}},
		{"DELETE /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, space().APIDelete(), jobHandler(s.deleteJob), wire.Marshal(api.DeleteRequest{ID: r.PathValue("id")}))
		}},
		{"POST /api/v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, space().APICancel(), jobHandler(s.cancel), wire.Marshal(api.CancelRequest{ID: r.PathValue("id")}))
		}},
		{"GET /api/v1/jobs/{id}/workers", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			req := api.WorkersRequest{ID: r.PathValue("id"), State: q.Get("state"), After: q.Get("after")}
			n, e := queryLimit(q)
			if e != nil {
				badQuery(w, space().APIWorkers(), e)
				return
			}
			req.Limit = n
			serve(w, r, space().APIWorkers(), s.replyWorkers, wire.Marshal(req))
		}},
		{"GET /api/v1/jobs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
			req, e := eventsQuery(r)
			if e != nil {
				badQuery(w, space().APIEvents(), e)
				return
			}
			serve(w, r, space().APIEvents(), s.replyEvents, wire.Marshal(req))
		}},
		{"GET /api/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, space().APINodes(), s.replyNodes, nil)
		}},
		// Every other path under a job goes to the job's master.
		{"/api/v1/jobs/{id}/{rest...}", s.forward},
	}
}

// eventsQuery reads ?since=<seq|RFC 3339 time>&limit=N.
func eventsQuery(r *http.Request) (api.EventsRequest, *api.Error) {
	q := r.URL.Query()
	req := api.EventsRequest{ID: r.PathValue("id")}
	if v := q.Get("since"); v != "" {
		if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
			req.SinceSeq = seq
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			req.SinceTime = &t
		} else {
			return req, api.Errorf(api.CodeInvalidArgument, "since %q is neither a sequence nor an RFC 3339 time", v)
		}
	}
	n, e := queryLimit(q)
	req.Limit = n
	return req, e
}

// queryLimit reads ?limit=N (0 when absent: the request's default); the
// handler checks its range.
func queryLimit(q url.Values) (int, *api.Error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, api.Errorf(api.CodeInvalidArgument, "limit %q is not a number", v)
	}
	return n, nil
}

// methodNotAllowed answers 405 in the API's error shape.
func methodNotAllowed(methods []string) http.HandlerFunc {
	methods = slices.Sorted(slices.Values(methods))
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		obs.WriteJSON(w, http.StatusMethodNotAllowed, api.Reply{
			Error: api.Errorf(api.CodeInvalidArgument, "%s is not served for %s (allowed: %s)", r.Method, r.URL.Path, allow)})
	}
}

// httpBody reads a request body of at most api.MaxPayload+1 bytes (one
// more than allowed, so the API answers too_large rather than truncating).
func (s *Service) httpBody(h func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, api.MaxPayload+1))
		if err != nil {
			writeReply(w, api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "the request body could not be read")})
			return
		}
		h(w, r, b)
	}
}

// public keeps the text of an internal error in the log: an HTTP client
// gets its code and a fixed message.
func (s *Service) public(rep api.Reply) api.Reply {
	if rep.Error != nil && rep.Error.Code == api.CodeInternal {
		s.log.Error("HTTP request failed", zap.String("error", rep.Error.Message))
		rep.Error = api.Errorf(api.CodeInternal, "internal error; the job manager logged it")
	}
	return rep
}

func writeReply(w http.ResponseWriter, rep api.Reply) {
	status := http.StatusOK
	if rep.Error != nil {
		status = rep.Error.Code.HTTPStatus()
	}
	obs.WriteJSON(w, status, rep)
}

// forward sends /api/v1/jobs/{id}/<rest> to the job's master over NATS; the
// master serves the routes it registered in OnOpenAPIInitialized. The
// master is job code: what it gets is the caller's request without its
// credentials, and what it answers is checked before a client sees it.
func (s *Service) forward(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := invalidID("job", id); err != nil {
		writeReply(w, api.Reply{Error: api.AsError(err)})
		return
	}
	j, _, err := s.jobs.GetJob(r.Context(), id)
	if err != nil {
		writeReply(w, s.public(api.Reply{Error: api.AsError(storeError(err))}))
		return
	}
	if j.State.Terminal() && s.serveEnded(w, r, j) {
		return
	}
	if j.State != api.StateRunning && j.State != api.StateCanceling {
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeFailedPrecondition, "job %s has no running master (state %s)", id, j.State)})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxPayload+1))
	if err != nil || len(body) > api.MaxPayload {
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeTooLarge, "body larger than %d bytes", api.MaxPayload)})
		return
	}
	subj, _ := s.space.MasterHTTP(id)
	req := wire.HTTPRequest{Method: r.Method, Path: "/" + r.PathValue("rest"), Query: r.URL.RawQuery,
		Header: forwardedHeader(r.Header), Body: body}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	msg, err := s.deps.NC.RequestWithContext(ctx, subj, wire.Marshal(req))
	if err != nil {
		s.log.Warn("forwarded request not answered", zap.String("job_id", id), zap.Uint64("epoch", j.Epoch), zap.Error(err))
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeUnavailable, "the master of job %s did not answer", id)})
		return
	}
	var resp wire.HTTPResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Status == 0 {
		resp.Status = http.StatusOK
		if err != nil {
			resp.Status = -1
		}
	}
	// A 1xx is no final answer and anything outside 100–599 is no status.
	if resp.Status < 200 || resp.Status > 599 {
		s.log.Warn("master answered a forwarded request badly", zap.String("job_id", id), zap.Uint64("epoch", j.Epoch),
			zap.Int("status", resp.Status), zap.Int("bytes", len(msg.Data)))
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeInternal, "the master of job %s gave an invalid answer", id)})
		return
	}
	h := w.Header()
	for k, v := range resp.Header {
		if k = http.CanonicalHeaderKey(k); forwardedAnswerHeaders[k] {
			h[k] = slices.Clone(v)
		}
	}
	// The answer is job code's, served from the console's origin: it may
	// not run script there nor be sniffed into something else.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// forwardedAnswerHeaders are the headers of a master's answer a client
// gets; the rest (cookies, redirects, CORS, hop-by-hop) are dropped.
var forwardedAnswerHeaders = map[string]bool{
	"Content-Type": true, "Content-Language": true, "Cache-Control": true, "Expires": true,
	"Etag": true, "Last-Modified": true, "Allow": true, "Retry-After": true,
}

// hopByHop are the headers of one connection (RFC 9110 §7.6.1), never forwarded.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Proxy-Connection": true,
}

// forwardedHeader is the caller's header without its credentials (the
// job's master is job code), proxy and hop-by-hop headers, including those
// the Connection header names.
func forwardedHeader(in http.Header) http.Header {
	drop := map[string]bool{}
	for _, v := range in.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	out := http.Header{}
	for k, v := range in {
		k = http.CanonicalHeaderKey(k)
		switch {
		case k == "Authorization" || k == "Cookie" || strings.HasPrefix(k, "Proxy-") || hopByHop[k] || drop[k]:
			continue
		}
		out[k] = slices.Clone(v)
	}
	return out
}
