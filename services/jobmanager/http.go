package jobmanager

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
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
			return s.store.Ping(ctx)
		},
	}, func() map[string]any { return map[string]any{"leader": s.Leading(), "replica": s.id} })
	mux := srv.Mux
	mux.HandleFunc("POST /api/v1/jobs", s.httpBody(func(ctx context.Context, b []byte) api.Reply {
		return s.replyJob(s.submit)(ctx, b)
	}))
	mux.HandleFunc("GET /api/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := api.ListRequest{State: api.State(q.Get("state")), Type: q.Get("type"), After: q.Get("after")}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				writeReply(w, api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "limit %q is not a number", l)})
				return
			}
			req.Limit = n
		}
		writeReply(w, s.replyList(r.Context(), wire.Marshal(req)))
	})
	mux.HandleFunc("GET /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, s.replyJob(s.get)(r.Context(), wire.Marshal(api.GetRequest{ID: r.PathValue("id")})))
	})
	mux.HandleFunc("POST /api/v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, s.replyJob(s.cancel)(r.Context(), wire.Marshal(api.CancelRequest{ID: r.PathValue("id")})))
	})
	mux.HandleFunc("GET /api/v1/jobs/{id}/workers", func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, s.replyWorkers(r.Context(), wire.Marshal(api.GetRequest{ID: r.PathValue("id")})))
	})
	mux.HandleFunc("GET /api/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, s.replyNodes(r.Context(), nil))
	})
	mux.HandleFunc("/api/v1/jobs/{id}/{rest...}", s.forward)
	return srv
}

func (s *Service) httpBody(h func(context.Context, []byte) api.Reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, api.MaxPayload+1))
		if err != nil {
			writeReply(w, api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "read body: %v", err)})
			return
		}
		writeReply(w, h(r.Context(), b))
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
	if j.State.Terminal() || j.Epoch == 0 {
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
