package framework

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Placer picks worker nodes for new workers: the least loaded live node
// with free capacity whose labels match. One Placer serves every master of
// a job-master node; it follows node presence through a KV watch, and
// counts its own placements between two presence reports so a burst of
// CreateWorker calls spreads instead of piling onto one node.
type Placer struct {
	mu    sync.Mutex
	ttl   time.Duration
	nodes map[string]*placeNode
}

type placeNode struct {
	node api.Node
	// placed counts placements made since the node's last report.
	placed int
	// leaving is set when the node announced it is shutting down.
	leaving bool
	// seenAt is when the last report arrived. KV expiry of a crashed
	// node's presence sends no event, so a silent node is judged here.
	seenAt time.Time
}

// NewPlacer returns a placer that forgets a node silent for ttl; call Run
// to follow presence.
func NewPlacer(ttl time.Duration) *Placer {
	return &Placer{ttl: ttl, nodes: map[string]*placeNode{}}
}

// Run follows worker node presence until ctx ends.
func (p *Placer) Run(ctx context.Context, store *kvstate.Store, log *zap.Logger) error {
	w, err := store.WatchNodes(ctx, api.NodeWorker)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				p.remove(e.Key())
				continue
			}
			n, err := kvstate.DecodeNode(e)
			if err != nil {
				log.Warn("bad node record", zap.String("key", e.Key()), zap.Error(err))
				continue
			}
			p.Update(*n)
		}
	}
}

func (p *Placer) remove(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.nodes {
		if api.NodeWorker+"."+id == key {
			delete(p.nodes, id)
		}
	}
}

// Update records a node's latest presence report.
func (p *Placer) Update(n api.Node) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pn, ok := p.nodes[n.ID]
	if !ok {
		pn = &placeNode{}
		p.nodes[n.ID] = pn
	}
	pn.node, pn.placed, pn.seenAt = n, 0, time.Now()
}

// MarkLeaving stops placing on a node that announced its shutdown.
func (p *Placer) MarkLeaving(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pn, ok := p.nodes[id]; ok {
		pn.leaving = true
	}
}

// Pick returns the least loaded matching node with free capacity and
// counts one placement on it.
func (p *Placer) Pick(workerType string, selectors map[string]string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *placeNode
	var bestScore float64
	now := time.Now()
	for _, pn := range p.nodes {
		if pn.leaving || now.Sub(pn.seenAt) > p.ttl || !matches(pn.node.Labels, selectors) || !supports(pn.node.Types, workerType) {
			continue
		}
		load := pn.node.Load + pn.placed
		if pn.node.Capacity > 0 && load >= pn.node.Capacity {
			continue
		}
		score := float64(load+1) / float64(max(pn.node.Capacity, 1))
		if best == nil || score < bestScore || (score == bestScore && pn.node.ID < best.node.ID) {
			best, bestScore = pn, score
		}
	}
	if best == nil {
		return "", ErrNoCapacity
	}
	best.placed++
	return best.node.ID, nil
}

// Nodes returns the number of known worker nodes.
func (p *Placer) Nodes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.nodes)
}

func matches(labels, selectors map[string]string) bool {
	for k, v := range selectors {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func supports(types []string, t string) bool {
	if len(types) == 0 {
		return true
	}
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}
