// Package svc holds the plumbing the three services share: opening the
// state store from the common config, keeping a node's presence fresh, and
// answering node control requests.
package svc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// OpenStore creates or opens every bucket and stream, retrying while NATS
// or JetStream is not up yet (e.g. a compose cluster still forming). With
// openOnly (the nodes) it creates nothing and waits for a job manager to.
// observe, if not nil, is told of every store operation (see KVObserver).
func OpenStore(ctx context.Context, cfg *config.Common, nc *nats.Conn, log *zap.Logger, observe kvstate.Observer, openOnly bool) (*kvstate.Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	l := cfg.Limits
	opts := kvstate.Options{Replicas: cfg.Replicas, NodeTTL: cfg.NodeTTL(), LeaseTTL: cfg.LeaseTTL, Observer: observe,
		JobsMaxBytes: l.JobsMaxBytes, StateMaxBytes: l.StateMaxBytes, EventsMaxAge: l.EventsMaxAge,
		EventsMaxBytes: l.EventsMaxBytes, EventsMaxPerJob: l.EventsMaxPerJob,
		RequestsMaxMsgs: l.RequestsMaxMsgs, RequestsMaxBytes: l.RequestsMaxBytes,
		OpenOnly: openOnly}
	delay := 250 * time.Millisecond
	for {
		st, err := kvstate.Open(ctx, js, cfg.Space(), opts)
		if err == nil {
			return st, nil
		}
		log.Warn("state store not ready, retrying", zap.Error(err), zap.Duration("in", delay))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open state store: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// KeepPresence writes the node's presence every interval until ctx ends,
// then deletes it so placement stops at once.
func KeepPresence(ctx context.Context, st kvstate.Presence, interval time.Duration, log *zap.Logger, node func() api.Node) {
	put := func() {
		n := node()
		if err := st.PutNode(ctx, &n); err != nil && ctx.Err() == nil {
			log.Warn("presence update failed", zap.Error(err))
		}
	}
	put()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			n := node()
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = st.DeleteNode(dctx, n.Kind, n.ID)
			cancel()
			return
		case <-t.C:
			put()
		}
	}
}

// Reply answers a control request.
func Reply(msg *nats.Msg, err error) {
	rep := wire.ControlReply{OK: err == nil}
	if err != nil {
		rep.Error = api.AsError(err)
	}
	_ = msg.Respond(wire.Marshal(rep))
}

// Decode reads a control request body, answering invalid_argument if it is malformed.
func Decode(msg *nats.Msg, v any) bool {
	if err := json.Unmarshal(msg.Data, v); err != nil {
		Reply(msg, api.Errorf(api.CodeInvalidArgument, "malformed %s request: %v", wire.Kind(msg), err))
		return false
	}
	return true
}
