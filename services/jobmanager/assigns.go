package jobmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// assigner sends the leader's assignments to job-master nodes, one request
// per node at a time: the assignments made while a node's request is
// unanswered go together in its next one (up to wire.MaxAssignments).
// One master moved costs its node no request and no record reads of its
// own; when a node's thousand masters move at once, a handful of requests
// carry them. An assignment alone goes at once, as before.
type assigner struct {
	s *Service

	mu      sync.Mutex
	waiting map[string][]*pendingAssign // node → assignments not yet sent
	sending map[string]bool             // node → a request in flight
}

type pendingAssign struct {
	a    wire.Assign
	done chan error // buffered: the answer never waits for its asker
}

func newAssigner(s *Service) *assigner {
	return &assigner{s: s, waiting: map[string][]*pendingAssign{}, sending: map[string]bool{}}
}

// assign asks node to run a's master and waits for the node's answer
// (or ctx).
func (as *assigner) assign(ctx context.Context, node string, a wire.Assign) error {
	p := &pendingAssign{a: a, done: make(chan error, 1)}
	as.mu.Lock()
	as.waiting[node] = append(as.waiting[node], p)
	start := !as.sending[node]
	as.sending[node] = true
	as.mu.Unlock()
	if start {
		go as.send(node)
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends node's waiting assignments, one request at a time, until
// none is left.
func (as *assigner) send(node string) {
	for {
		as.mu.Lock()
		batch := as.waiting[node]
		if len(batch) == 0 {
			delete(as.waiting, node)
			delete(as.sending, node)
			as.mu.Unlock()
			return
		}
		if len(batch) > wire.MaxAssignments {
			batch = batch[:wire.MaxAssignments]
		}
		as.waiting[node] = as.waiting[node][len(batch):]
		as.mu.Unlock()
		errs := as.request(node, batch)
		for i, p := range batch {
			p.done <- errs[i]
		}
	}
}

// request sends one batch and returns the node's answer for each
// assignment; a request that fails fails them all.
func (as *assigner) request(node string, batch []*pendingAssign) []error {
	errs := make([]error, len(batch))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	subj, err := as.s.space.NodeControl(topics.KindJobMaster, node)
	if err != nil {
		return fail(err)
	}
	as.s.metrics.assignBatch.Observe(float64(len(batch)))
	body := wire.Assignments{Assign: make([]wire.Assign, len(batch))}
	for i, p := range batch {
		body.Assign[i] = p.a
	}
	msg := wire.NewMsg(subj, wire.KindAssign, 0, wire.Marshal(body))
	ctx, cancel := context.WithTimeout(context.Background(), as.s.cfg.AssignTimeout)
	defer cancel()
	resp, err := as.s.deps.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return fail(err)
	}
	var rep wire.AssignReplies
	switch {
	case json.Unmarshal(resp.Data, &rep) != nil:
		return fail(errors.New("bad reply"))
	case rep.Error != nil:
		return fail(rep.Error)
	case len(rep.Results) != len(batch):
		return fail(fmt.Errorf("%d answers to %d assignments", len(rep.Results), len(batch)))
	}
	for i, r := range rep.Results {
		if !r.OK {
			errs[i] = r.Error
			if errs[i] == nil {
				errs[i] = api.Errorf(api.CodeInternal, "refused")
			}
		}
	}
	return errs
}
