package jobmanager

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
)

// consumeRequests takes submissions from the durable requests stream; every
// replica consumes from one shared durable consumer, so each request is
// handled once, and it is acknowledged only once the job is stored.
func (s *Service) consumeRequests(ctx context.Context) {
	js := s.store.JetStream()
	space := s.store.Space()
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, space.RequestsStream(), jetstream.ConsumerConfig{
			Durable: "jobmanager", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
			MaxDeliver: -1, MaxAckPending: 1000,
		})
		if err == nil {
			break
		}
		s.log.Warn("requests consumer not ready", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		body := msg.Data()
		// A request without an id takes one from its stream sequence, so
		// a redelivery is recognized as the same job.
		var probe struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.ID == "" {
			if md, err := msg.Metadata(); err == nil {
				var m map[string]json.RawMessage
				if json.Unmarshal(body, &m) == nil {
					probe.ID = "req-" + strconv.FormatUint(md.Sequence.Stream, 10)
					m["id"], _ = json.Marshal(probe.ID)
					body, _ = json.Marshal(m)
				}
			}
		}
		_, err := s.submit(rctx, body)
		code := api.ErrorCode(err)
		if err != nil && (code == api.CodeUnavailable || code == api.CodeInternal) {
			s.log.Warn("durable request not stored, will retry", zap.String("request_id", probe.ID), zap.Error(err))
			_ = msg.NakWithDelay(time.Second)
			return
		}
		if err != nil {
			s.log.Warn("durable request refused", zap.String("request_id", probe.ID), zap.Error(err))
			s.publishRejected(err)
		} else {
			s.metrics.submissions.WithLabelValues("durable").Inc()
		}
		_ = msg.Ack()
	})
	if err != nil {
		s.log.Error("consume requests", zap.Error(err))
		return
	}
	<-ctx.Done()
	cc.Stop()
}

// publishRejected records a refused durable request (it has no reply subject).
func (s *Service) publishRejected(err error) {
	s.metrics.rejected.WithLabelValues("durable", string(api.ErrorCode(err))).Inc()
}
