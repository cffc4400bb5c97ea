// Package client is the Go client of Drover's public v1 API over NATS: the
// CLI, the tests and the benchmarks use it, and so can any Go program.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// DefaultTimeout bounds a request whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Client calls the v1 API of one deployment.
type Client struct {
	nc    *nats.Conn
	space topics.Space
}

// New returns a client for the deployment whose namespace is space.
func New(nc *nats.Conn, space topics.Space) *Client {
	return &Client{nc: nc, space: space}
}

// Conn returns the underlying connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Space returns the deployment namespace.
func (c *Client) Space() topics.Space { return c.space }

// Call sends a raw request to subject and decodes the reply envelope,
// returning its coded error as an *api.Error.
func (c *Client) Call(ctx context.Context, subject string, req any) (*api.Reply, error) {
	var rep api.Reply
	if err := c.call(ctx, subject, req, &rep); err != nil {
		return &rep, err
	}
	return &rep, nil
}

// call sends req to subject and decodes a success reply into out; a coded
// error reply is returned as an *api.Error.
func (c *Client) call(ctx context.Context, subject string, req any, out any) error {
	var body []byte
	switch r := req.(type) {
	case []byte:
		body = r
	default:
		b, err := api.Encode(req)
		if err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		body = b
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("no answer on %s: %v", subject, err)}
	}
	var failed struct {
		Error *api.Error `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &failed); err != nil {
		return fmt.Errorf("client: decode reply: %w", err)
	}
	if failed.Error != nil {
		return failed.Error
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("client: decode reply: %w", err)
	}
	return nil
}

func (c *Client) job(ctx context.Context, subject string, req any) (*api.Job, error) {
	rep, err := c.Call(ctx, subject, req)
	if err != nil {
		return nil, err
	}
	if rep.Job == nil {
		return nil, fmt.Errorf("client: reply without a job")
	}
	return rep.Job, nil
}

// Submit creates a job (idempotent for the same id and spec).
func (c *Client) Submit(ctx context.Context, spec api.Spec) (*api.Job, error) {
	return c.job(ctx, c.space.APISubmit(), spec)
}

// Get returns one job.
func (c *Client) Get(ctx context.Context, id string) (*api.Job, error) {
	return c.job(ctx, c.space.APIGet(), api.GetRequest{ID: id})
}

// Cancel asks to cancel a job and returns it (canceling or terminal).
func (c *Client) Cancel(ctx context.Context, id string) (*api.Job, error) {
	return c.job(ctx, c.space.APICancel(), api.CancelRequest{ID: id})
}

// List returns one page of jobs and the cursor of the next ("" at the end).
func (c *Client) List(ctx context.Context, req api.ListRequest) ([]api.Job, string, error) {
	rep, err := c.Call(ctx, c.space.APIList(), req)
	if err != nil {
		return nil, "", err
	}
	return rep.Jobs, rep.Next, nil
}

// Delete removes an ended job with all its records, events and scratch
// objects (an administrator's call); it returns the job as it was.
func (c *Client) Delete(ctx context.Context, id string) (*api.Job, error) {
	return c.job(ctx, c.space.APIDelete(), api.DeleteRequest{ID: id})
}

// Nodes returns every live job-master and worker node.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	rep, err := c.Call(ctx, c.space.APINodes(), struct{}{})
	if err != nil {
		return nil, err
	}
	return rep.Nodes, nil
}

// WorkersPage returns one page of a job's workers in id order, with the
// cursor of the next page (Next, "" at the end) and the job's worker
// count (Total).
func (c *Client) WorkersPage(ctx context.Context, req api.WorkersRequest) (api.WorkersReply, error) {
	var rep api.WorkersReply
	err := c.call(ctx, c.space.APIWorkers(), req, &rep)
	return rep, err
}

// Workers returns every worker of a job in id order, following the pages
// (ctx bounds them all).
func (c *Client) Workers(ctx context.Context, id string) ([]api.Worker, error) {
	req := api.WorkersRequest{ID: id, Limit: MaxWorkersPage}
	var out []api.Worker
	for {
		rep, err := c.WorkersPage(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, rep.Workers...)
		if rep.Next == "" {
			return out, nil
		}
		if rep.Next <= req.After {
			return nil, fmt.Errorf("client: workers of %s: the page after %q did not advance", id, req.After)
		}
		req.After = rep.Next
	}
}

// MaxWorkersPage is the largest page of workers a request may ask for.
const MaxWorkersPage = 1000

// Events returns a page of a job's events, oldest first, and the sequence
// to ask from for the next page (or for events that happen later).
func (c *Client) Events(ctx context.Context, req api.EventsRequest) ([]api.StreamEvent, uint64, error) {
	var rep api.EventsReply
	if err := c.call(ctx, c.space.APIEvents(), req, &rep); err != nil {
		return nil, 0, err
	}
	return rep.Events, rep.Next, nil
}

// SubmitDurable publishes a submission on the durable requests stream; it is
// accepted even while no job manager runs. The spec must carry an id, which
// also deduplicates a re-published request.
func (c *Client) SubmitDurable(ctx context.Context, spec api.Spec) error {
	if err := topics.ValidateID("job", spec.ID); err != nil {
		return &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	b, err := api.Encode(spec)
	if err != nil {
		return err
	}
	_, err = js.Publish(ctx, c.space.JobRequests(), b, jetstream.WithMsgID(spec.ID))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == 10077 {
		return &api.Error{Code: api.CodeUnavailable, Message: "the durable requests stream is full (" + apiErr.Description + "): no job manager is taking requests, or DROVER_REQUESTS_MAX_MSGS/_BYTES is too low"}
	}
	return err
}

// Wait blocks until the job is terminal, calling progress (if not nil) with
// every state it sees. It watches the job's events and re-reads the job, so
// a missed event only delays it by one poll interval.
func (c *Client) Wait(ctx context.Context, id string, progress func(*api.Job)) (*api.Job, error) {
	subj, err := c.space.JobEvents(id)
	if err != nil {
		return nil, &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
	}
	// An event only wakes the loop, which re-reads the job: a burst of
	// events (a large job's thousands of worker_online) is one wake-up,
	// never a backlog the connection drops as a slow consumer.
	wake := make(chan struct{}, 1)
	sub, err := c.nc.Subscribe(subj, func(*nats.Msg) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	for {
		j, err := c.Get(ctx, id)
		if err != nil && api.ErrorCode(err) != api.CodeUnavailable {
			return nil, err
		}
		if j != nil {
			if progress != nil {
				progress(j)
			}
			if j.State.Terminal() {
				return j, nil
			}
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-wake:
		case <-poll.C:
		}
	}
}
