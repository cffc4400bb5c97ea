package jobmanager

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/buildinfo"
	"github.com/drover-run/drover/internal/gopool"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// ServiceName is the name of the v1 API as a NATS micro service: `nats
// micro ls` lists every job manager replica under it.
const ServiceName = topics.APIService

// endpoint is one request of the v1 API.
type endpoint struct {
	name    string // the micro endpoint name
	subject string
	request string // what the request carries (endpoint metadata)
	reply   string // what a success reply carries
	http    string // the HTTP mirror
	handle  handler
}

func (s *Service) endpoints(space topics.Space) []endpoint {
	return []endpoint{
		{"jobs-submit", space.APISubmit(), `Spec {"type", "id"?, "config"?, "selectors"?, "restart"?}`, `{"job"}`,
			"POST /api/v1/jobs", jobHandler(s.submit)},
		{"jobs-get", space.APIGet(), `{"id"}`, `{"job"}`, "GET /api/v1/jobs/{id}", jobHandler(s.get)},
		{"jobs-list", space.APIList(), `{"state"?, "type"?, "limit"?, "after"?, "detail"?}`, `{"jobs": [], "next"?}`,
			"GET /api/v1/jobs", s.replyList},
		{"jobs-cancel", space.APICancel(), `{"id"}`, `{"job"}`, "POST /api/v1/jobs/{id}/cancel", jobHandler(s.cancel)},
		{"jobs-delete", space.APIDelete(), `{"id"}`, `{"job"}`, "DELETE /api/v1/jobs/{id}", jobHandler(s.deleteJob)},
		{"jobs-workers", space.APIWorkers(), `{"id", "state"?, "limit"?, "after"?}`, `{"workers": [], "next"?, "total"}`,
			"GET /api/v1/jobs/{id}/workers", s.replyWorkers},
		{"jobs-events", space.APIEvents(), `{"id", "since_seq"? | "since_time"?, "limit"?}`, `{"events": [], "next"}`,
			"GET /api/v1/jobs/{id}/events", s.replyEvents},
		{"nodes-list", space.APINodes(), `{}`, `{"nodes": []}`, "GET /api/v1/nodes", s.replyNodes},
	}
}

// endpointStats are what micro can not count for an endpoint whose
// requests are answered after its handler returned: errors by code and
// requests in flight (STATS "data").
type endpointStats struct {
	mu       sync.Mutex
	errors   map[string]map[api.Code]int // endpoint name → code → count
	inflight map[string]int
}

func (st *endpointStats) begin(name string) {
	st.mu.Lock()
	st.inflight[name]++
	st.mu.Unlock()
}

func (st *endpointStats) end(name string, e *api.Error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.inflight[name]--
	if e != nil {
		if st.errors[name] == nil {
			st.errors[name] = map[api.Code]int{}
		}
		st.errors[name][e.Code]++
	}
}

func (st *endpointStats) data(name string) any {
	st.mu.Lock()
	defer st.mu.Unlock()
	errs := map[api.Code]int{}
	for c, n := range st.errors[name] {
		errs[c] = n
	}
	return map[string]any{"errors": errs, "in_flight": st.inflight[name]}
}

// serveAPI runs the v1 API as the micro service ServiceName, in the
// replicas' queue group, until the returned stop is called; stop waits for
// the requests taken to be answered.
//
// Requests are handled concurrently, up to maxInflight: each waits on a KV
// round trip, and micro calls an endpoint's handler one request at a time,
// which would cap the API at one round trip per request per endpoint
// whatever the store allows, and let one slow request hold up the others.
// So a handler hands the request to a goroutine and returns; the answer is
// published to the request's reply subject with micro's error headers. For
// this reason micro's own num_errors stays 0: errors by code are in each
// endpoint's stats data (and in drover_jobmanager_api_requests_total).
func (s *Service) serveAPI(ctx context.Context) (stop func(), err error) {
	space := s.space
	stats := &endpointStats{errors: map[string]map[api.Code]int{}, inflight: map[string]int{}}
	srv, err := micro.AddService(s.deps.NC, micro.Config{
		Name: ServiceName, Version: buildinfo.Version(),
		Description: "Drover job manager: the v1 API (docs/openapi.yaml)",
		QueueGroup:  queueGroup,
		Metadata:    map[string]string{"kind": "jobmanager", "replica": s.id, "prefix": space.Prefix()},
		StatsHandler: func(e *micro.Endpoint) any {
			return stats.data(e.Name)
		},
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Warn("api subscription error", zap.String("subject", e.Subject), zap.String("error", e.Description))
		},
	})
	if err != nil {
		return nil, err
	}
	inflight := make(chan struct{}, maxInflight)
	var handling sync.WaitGroup
	var closeMu sync.Mutex
	closed := false
	stop = func() {
		_ = srv.Stop()
		closeMu.Lock()
		closed = true
		closeMu.Unlock()
		handling.Wait()
	}
	for _, ep := range s.endpoints(space) {
		h := func(req micro.Request) {
			inflight <- struct{}{}
			closeMu.Lock()
			if closed {
				closeMu.Unlock()
				<-inflight
				return
			}
			handling.Add(1)
			closeMu.Unlock()
			// Copies: req is micro's, and is not touched after we return.
			reply, body := req.Reply(), req.Data()
			stats.begin(ep.name)
			gopool.Go(func() {
				defer func() { <-inflight; handling.Done() }()
				// A request taken is answered even if the replica is shutting
				// down meanwhile (stop waits for it): canceling its store call
				// would answer internal "context canceled" to a client whose
				// job may well have been stored.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				rep, e := s.answer(rctx, ep.subject, ep.handle, body)
				stats.end(ep.name, e)
				if reply != "" {
					s.respond(reply, ep.subject, rep, e)
				}
			})
		}
		if err := srv.AddEndpoint(ep.name, micro.HandlerFunc(h), micro.WithEndpointSubject(ep.subject),
			micro.WithEndpointMetadata(map[string]string{"request": ep.request, "reply": ep.reply, "http": ep.http})); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// replyMsg is the answer to a request: the JSON reply, and on an error the
// micro error headers beside the JSON error body (Nats-Service-Error-Code
// is the HTTP status of the code, as in the HTTP API).
func replyMsg(subject string, rep any, e *api.Error) *nats.Msg {
	msg := &nats.Msg{Subject: subject}
	if e == nil {
		msg.Data = wire.Marshal(rep)
		return msg
	}
	msg.Data = wire.Marshal(api.Reply{Error: e})
	msg.Header = nats.Header{
		micro.ErrorHeader:     []string{headerValue(string(e.Code) + ": " + e.Message)},
		micro.ErrorCodeHeader: []string{strconv.Itoa(e.Code.HTTPStatus())},
	}
	return msg
}

// headerValue keeps a header on one line (a message may quote input) and
// bounded.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}
