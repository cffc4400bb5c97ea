package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// Business messages travel by request on subjects of their own, apart
// from heartbeats and acknowledgements: the receiving runtime answers at
// once whether it queued the message, never blocking its subscription, so
// a job busy in a callback neither loses messages silently nor starves
// its heartbeats.
const (
	// workerQueue bounds the messages a worker accepted and has not handled.
	workerQueue = 256
	// masterQueue bounds the worker messages a master accepted and has not handled.
	masterQueue = 1024
	// defaultSendTimeout bounds a send whose ctx has no deadline.
	defaultSendTimeout = 10 * time.Second
	// sendRetry is the pause between two tries while nobody listens.
	sendRetry = 20 * time.Millisecond
)

// send delivers msg by request. While nobody listens (a worker not yet
// subscribed, a master failing over) it tries again until ctx ends or
// wanted says the receiver is gone.
func send(ctx context.Context, nc *nats.Conn, msg *nats.Msg, wanted func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultSendTimeout)
		defer cancel()
	}
	for {
		resp, err := nc.RequestMsgWithContext(ctx, msg)
		if errors.Is(err, nats.ErrNoResponders) {
			if werr := wanted(); werr != nil {
				return werr
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: nobody took it before the deadline: %v", framework.ErrNotDelivered, ctx.Err())
			case <-time.After(sendRetry):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %v", framework.ErrNotDelivered, err)
		}
		var rep wire.ControlReply
		if err := json.Unmarshal(resp.Data, &rep); err != nil {
			return fmt.Errorf("%w: bad reply: %v", framework.ErrNotDelivered, err)
		}
		if !rep.OK {
			if rep.Error == nil {
				rep.Error = api.Errorf(api.CodeInternal, "refused")
			}
			return fmt.Errorf("%w: %w", framework.ErrNotDelivered, rep.Error)
		}
		return nil
	}
}

// answer replies to a message request: nil means queued.
func answer(msg *nats.Msg, err error) {
	if msg.Reply == "" {
		return
	}
	rep := wire.ControlReply{OK: err == nil}
	if err != nil {
		rep.Error = api.AsError(err)
	}
	_ = msg.Respond(wire.Marshal(rep))
}
