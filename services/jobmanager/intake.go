package jobmanager

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
)

// Delivery of durable requests: a request that can never be stored is
// acknowledged at once and rejected; one that failed for a reason that may
// pass (the store did not answer) is delivered again after a growing
// delay, at most RequestMaxDeliver times in all, then rejected too. So no
// request loops, and bad ones never hold a place in the consumer's window.
const (
	requestRetryDelay    = time.Second
	requestMaxRetryDelay = 30 * time.Second
	// defaultRequestMaxDeliver is DROVER_REQUEST_MAX_DELIVER's default,
	// for a Config built in code.
	defaultRequestMaxDeliver = 5
	// defaultRetention is DROVER_RETENTION's default, for a Config built in code.
	defaultRetention = 7 * 24 * time.Hour
)

// retryable reports whether a submission that failed with code may succeed
// when tried again.
func retryable(code api.Code) bool {
	return code == api.CodeUnavailable || code == api.CodeInternal
}

// consumeRequests takes submissions from the durable requests stream; every
// replica consumes from one shared durable consumer, so each request is
// handled once, and it is acknowledged only once the job is stored or
// rejected.
func (s *Service) consumeRequests(ctx context.Context) {
	js := s.conn.JetStream()
	space := s.space
	maxDeliver := s.cfg.RequestMaxDeliver
	if maxDeliver <= 0 {
		maxDeliver = defaultRequestMaxDeliver
	}
	var cons jetstream.Consumer
	for {
		var err error
		// The server's MaxDeliver is a backstop one above ours: we
		// reject on the last delivery ourselves, as a message the server
		// stops delivering stays in the stream unanswered.
		cons, err = js.CreateOrUpdateConsumer(ctx, space.RequestsStream(), jetstream.ConsumerConfig{
			Durable: "jobmanager", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
			MaxDeliver: maxDeliver + 1, MaxAckPending: 1000,
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
		var seq, delivered uint64
		if md, err := msg.Metadata(); err == nil {
			seq, delivered = md.Sequence.Stream, md.NumDelivered
		}
		body, id := requestWithID(msg.Data(), seq)
		_, err := s.submit(rctx, body)
		code := api.ErrorCode(err)
		if err != nil && retryable(code) && delivered < uint64(maxDeliver) {
			delay := min(requestRetryDelay<<min(delivered-1, 16), requestMaxRetryDelay)
			s.log.Warn("durable request not stored, will retry", zap.String("request_id", id), zap.Uint64("request", seq),
				zap.Uint64("delivery", delivered), zap.Duration("delay", delay), zap.Error(err))
			_ = msg.NakWithDelay(delay)
			return
		}
		if err != nil {
			s.log.Warn("durable request refused", zap.String("request_id", id), zap.Uint64("request", seq),
				zap.Uint64("delivery", delivered), zap.Error(err))
			s.publishRejected(id, seq, err)
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

// requestWithID gives a request without an id one from its stream
// sequence, so a redelivery is recognized as the same job. It returns the
// body to submit and the id ("" if the request is not a JSON object).
func requestWithID(body []byte, seq uint64) ([]byte, string) {
	var probe struct {
		ID string `json:"id"`
	}
	if len(body) > api.MaxPayload || json.Unmarshal(body, &probe) != nil || probe.ID != "" || seq == 0 {
		return body, probe.ID
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body, ""
	}
	id := "req-" + strconv.FormatUint(seq, 10)
	m["id"], _ = json.Marshal(id)
	b, err := json.Marshal(m)
	if err != nil {
		return body, ""
	}
	return b, id
}

// publishRejected answers a refused durable request (it has no reply
// subject) on the rejections subject, with its coded error.
func (s *Service) publishRejected(id string, seq uint64, err error) {
	e := api.AsError(err)
	s.metrics.rejected.WithLabelValues("durable", string(e.Code)).Inc()
	if e.Code == api.CodeInternal {
		e = api.Errorf(api.CodeInternal, "internal error (the job manager's log has the detail)")
	}
	ev := api.Event{Job: id, Kind: api.EventRequestRejected, Error: e, Request: seq, Time: time.Now().UTC()}
	if perr := s.deps.NC.Publish(s.space.RequestRejections(), wire.Marshal(ev)); perr != nil {
		s.log.Warn("request rejection not published", zap.Uint64("request", seq), zap.Error(perr))
	}
}
