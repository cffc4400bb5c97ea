package jobmanager

import (
	"context"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
)

func (s *Service) replyJob(f func(context.Context, []byte) (*api.Job, error)) func(context.Context, []byte) api.Reply {
	return func(ctx context.Context, b []byte) api.Reply {
		j, err := f(ctx, b)
		if err != nil {
			return api.Reply{Error: api.AsError(err)}
		}
		return api.Reply{Job: j}
	}
}

func (s *Service) replyList(ctx context.Context, b []byte) api.Reply {
	jobs, next, err := s.list(ctx, b)
	if err != nil {
		return api.Reply{Error: api.AsError(err)}
	}
	if jobs == nil {
		jobs = []api.Job{}
	}
	return api.Reply{Jobs: jobs, Next: next}
}

func (s *Service) replyNodes(ctx context.Context, b []byte) api.Reply {
	if err := decodeStrict(b, &struct{}{}); err != nil {
		return api.Reply{Error: api.AsError(err)}
	}
	nodes, err := s.store.ListNodes(ctx, "")
	if err != nil {
		return api.Reply{Error: api.AsError(storeError(err))}
	}
	if nodes == nil {
		nodes = []api.Node{}
	}
	return api.Reply{Nodes: nodes}
}

func (s *Service) replyWorkers(ctx context.Context, b []byte) api.Reply {
	ws, err := s.workers(ctx, b)
	if err != nil {
		return api.Reply{Error: api.AsError(err)}
	}
	if ws == nil {
		ws = []api.Worker{}
	}
	return api.Reply{Workers: ws}
}

func (s *Service) countReply(subject string, e *api.Error) {
	code := "ok"
	if e != nil {
		code = string(e.Code)
		if e.Code == api.CodeInternal {
			s.log.Error("api request failed", zap.String("subject", subject), zap.String("error", e.Message))
		}
	}
	if subject == s.store.Space().APISubmit() {
		if e != nil {
			s.metrics.rejected.WithLabelValues("request", code).Inc()
		} else {
			s.metrics.submissions.WithLabelValues("request").Inc()
		}
	}
	s.metrics.requests.WithLabelValues(shortSubject(subject), code).Inc()
}
