package jobmanager

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

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
			if s.store == nil {
				return api.Errorf(api.CodeUnavailable, "state store not open")
			}
			if !s.deps.NC.IsConnected() {
				return api.Errorf(api.CodeUnavailable, "no NATS connection to reach the buckets")
			}
			return s.store.Ping(ctx)
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
	space := func() topics.Space { return s.store.Space() }
	reply := func(w http.ResponseWriter, subject string, rep api.Reply) {
		s.countReply(subject, rep.Error)
		writeReply(w, rep)
	}
	return []route{
		{"POST /api/v1/jobs", s.httpBody(func(w http.ResponseWriter, r *http.Request, b []byte) {
			reply(w, space().APISubmit(), s.replyJob(s.submit)(r.Context(), b))
		})},
		{"GET /api/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			req := api.ListRequest{State: api.State(q.Get("state")), Type: q.Get("type"), After: q.Get("after")}
			if l := q.Get("limit"); l != "" {
				n, err := strconv.Atoi(l)
				if err != nil {
					reply(w, space().APIList(), api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "limit %q is not a number", l)})
					return
				}
				req.Limit = n
			}
			reply(w, space().APIList(), s.replyList(r.Context(), wire.Marshal(req)))
		}},
		{"GET /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
			reply(w, space().APIGet(), s.replyJob(s.get)(r.Context(), wire.Marshal(api.GetRequest{ID: r.PathValue("id")})))
		}},
		{"POST /api/v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
			reply(w, space().APICancel(), s.replyJob(s.cancel)(r.Context(), wire.Marshal(api.CancelRequest{ID: r.PathValue("id")})))
		}},
		{"GET /api/v1/jobs/{id}/workers", func(w http.ResponseWriter, r *http.Request) {
			reply(w, space().APIWorkers(), s.replyWorkers(r.Context(), wire.Marshal(api.GetRequest{ID: r.PathValue("id")})))
		}},
		{"GET /api/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
			reply(w, space().APINodes(), s.replyNodes(r.Context(), nil))
		}},
		// Every other path under a job goes to the job's master.
		{"/api/v1/jobs/{id}/{rest...}", s.forward},
	}
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
			writeReply(w, api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "read body: %v", err)})
			return
		}
		h(w, r, b)
	}
}

func writeReply(w http.ResponseWriter, rep api.Reply) {
	status := http.StatusOK
	if rep.Error != nil {
		status = rep.Error.Code.HTTPStatus()
	}
	obs.WriteJSON(w, status, rep)
}

// forward sends /api/v1/jobs/{id}/<rest> to the job's master over NATS; the
// master serves the routes it registered in OnOpenAPIInitialized.
func (s *Service) forward(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := invalidID("job", id); err != nil {
		writeReply(w, api.Reply{Error: api.AsError(err)})
		return
	}
	j, _, err := s.store.GetJob(r.Context(), id)
	if err != nil {
		writeReply(w, api.Reply{Error: api.AsError(storeError(err))})
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
	subj, _ := s.store.Space().MasterHTTP(id)
	req := wire.HTTPRequest{Method: r.Method, Path: "/" + r.PathValue("rest"), Query: r.URL.RawQuery,
		Header: r.Header, Body: body}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	msg, err := s.deps.NC.RequestWithContext(ctx, subj, wire.Marshal(req))
	if err != nil {
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeUnavailable, "master of job %s did not answer: %v", id, err)})
		return
	}
	var resp wire.HTTPResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeInternal, "bad answer from master: %v", err)})
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}
