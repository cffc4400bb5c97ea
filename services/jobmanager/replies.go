package jobmanager

import (
	"context"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
)

// handler answers one API request: the success reply (one of pkg/api's
// *Reply types) or a coded error. The NATS and HTTP APIs both call it.
type handler func(ctx context.Context, body []byte) (any, error)

func jobHandler(f func(context.Context, []byte) (*api.Job, error)) handler {
	return func(ctx context.Context, b []byte) (any, error) {
		j, err := f(ctx, b)
		if err != nil {
			return nil, err
		}
		return api.JobReply{Job: j}, nil
	}
}

// replyList answers a page of jobs that fits in one NATS message.
func (s *Service) replyList(ctx context.Context, b []byte) (any, error) {
	jobs, next, err := s.list(ctx, b, replyBytes)
	if err != nil {
		return nil, err
	}
	if jobs == nil {
		jobs = []api.Job{}
	}
	return api.ListReply{Jobs: jobs, Next: next}, nil
}

func (s *Service) replyNodes(ctx context.Context, b []byte) (any, error) {
	if err := decodeStrict(b, &struct{}{}); err != nil {
		return nil, err
	}
	nodes, err := s.presence.ListNodes(ctx, "")
	if err != nil {
		return nil, storeError(err)
	}
	if nodes == nil {
		nodes = []api.Node{}
	}
	return api.NodesReply{Nodes: nodes}, nil
}

// replyWorkers answers a page of a job's workers that fits in one NATS
// message.
func (s *Service) replyWorkers(ctx context.Context, b []byte) (any, error) {
	rep, err := s.workers(ctx, b, replyBytes)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

func (s *Service) replyEvents(ctx context.Context, b []byte) (any, error) {
	evs, next, err := s.events(ctx, b)
	if err != nil {
		return nil, err
	}
	return api.EventsReply{Events: evs, Next: next}, nil
}

// answer runs h and counts the outcome: the reply to send, or the coded
// error (internal text logged, not sent).
func (s *Service) answer(ctx context.Context, subject string, h handler, body []byte) (any, *api.Error) {
	rep, err := h(ctx, body)
	var e *api.Error
	if err != nil {
		e = api.AsError(err)
	}
	s.countReply(subject, e)
	if e != nil && e.Code == api.CodeInternal {
		// countReply logged the text; the client learns only the code.
		e = api.Errorf(api.CodeInternal, "internal error (the job manager's log has the detail)")
	}
	return rep, e
}

func (s *Service) countReply(subject string, e *api.Error) {
	code := "ok"
	if e != nil {
		code = string(e.Code)
		if e.Code == api.CodeInternal {
			s.log.Error("api request failed", zap.String("subject", subject), zap.String("error", e.Message))
		}
	}
	if subject == s.space.APISubmit() {
		if e != nil {
			s.metrics.rejected.WithLabelValues("request", code).Inc()
		} else {
			s.metrics.submissions.WithLabelValues("request").Inc()
		}
	}
	s.metrics.requests.WithLabelValues(shortSubject(subject), code).Inc()
}

// respond sends the answer to an API request (rep, or the error e), never
// over the payload limit of the connection: a reply that would be is
// answered too_large instead. A reply not sent as built is logged and
// counted.
func (s *Service) respond(reply, subject string, rep any, e *api.Error) {
	msg := replyMsg(reply, rep, e)
	if max := s.deps.NC.MaxPayload(); int64(len(msg.Data)) > max {
		s.metrics.respondFailures.WithLabelValues(shortSubject(subject), "too_large").Inc()
		s.log.Warn("api reply too large", zap.String("subject", subject), zap.Int("bytes", len(msg.Data)), zap.Int64("max_payload", max))
		msg = replyMsg(reply, nil, api.Errorf(api.CodeTooLarge, "the reply would be %d bytes, more than the %d a message may carry", len(msg.Data), max))
	}
	if err := s.deps.NC.PublishMsg(msg); err != nil {
		s.metrics.respondFailures.WithLabelValues(shortSubject(subject), "send").Inc()
		s.log.Warn("api reply not sent", zap.String("subject", subject), zap.Int("bytes", len(msg.Data)), zap.Error(err))
	}
}
