// Package placement picks nodes: the least loaded live node of a kind with
// free capacity, matching labels, serving the wanted type. Masters place
// workers with it; the job manager's leader places masters.
package placement

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// ErrNoCapacity: no live node of the kind with free capacity matches.
var ErrNoCapacity = errors.New("placement: no node with free capacity matches")

// Placer picks nodes of one kind: the least loaded live node with free
// capacity whose labels match and which serves the wanted type. Masters use
// one (per job-master node) to place workers; the job manager's leader uses
// one to place masters. It follows node presence through a KV watch, and
// counts its own placements between two presence reports so a burst of
// placements spreads instead of piling onto one node.
type Placer struct {
	kind  string
	ttl   time.Duration
	mu    sync.Mutex
	nodes map[string]*placeNode
	// gen counts the presence reports and departures taken in.
	gen uint64
	// synced is set once the watch delivered every node present when it
	// started, cleared while a watch is restarted.
	synced bool
}

type placeNode struct {
	node api.Node
	// placed counts placements made since the node's last report.
	placed int
	// seenAt is when the last report arrived. KV expiry of a crashed
	// node's presence sends no event, so a silent node is judged here.
	seenAt time.Time
	// avoidUntil skips a node that just failed a placement.
	avoidUntil time.Time
}

// NewPlacer returns a placer for nodes of kind that forgets a node silent
// for ttl; call Run to follow presence.
func NewPlacer(kind string, ttl time.Duration) *Placer {
	return &Placer{kind: kind, ttl: ttl, nodes: map[string]*placeNode{}}
}

// NodeWatcher is the part of the nodes' presence (kvstate.Presence) the
// placer reads.
type NodeWatcher interface {
	WatchNodes(ctx context.Context, kind string) (*kvstate.Watch[kvstate.NodeEvent], error)
}

// Run follows the nodes' presence until ctx ends.
func (p *Placer) Run(ctx context.Context, store NodeWatcher, log *zap.Logger) {
	for ctx.Err() == nil {
		w, err := store.WatchNodes(ctx, p.kind)
		if err != nil {
			log.Warn("watch nodes", zap.String("kind", p.kind), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Events() {
			switch {
			case e.Op == kvstate.OpSynced:
				p.setSynced(true)
			case e.Op == kvstate.OpDelete:
				p.Forget(e.ID)
			case e.Err != nil:
				log.Warn("bad node record", zap.String("node", e.ID), zap.Error(e.Err))
			case e.Op == kvstate.OpPut:
				p.Update(*e.Node)
			}
		}
		_ = w.Stop()
		p.setSynced(false)
	}
}

func (p *Placer) setSynced(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = v
}

// NoneCanTake reports that the placer knows every live node and none could
// take a placement of typ with selectors now (Pick would fail); false while
// it does not know them all yet.
func (p *Placer) NoneCanTake(typ string, selectors map[string]string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.synced && p.best(typ, selectors, "", time.Now()) == nil
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
	p.gen++
}

// Forget drops a node that is gone or leaving; its next report, if it
// comes back, adds it again.
func (p *Placer) Forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.nodes, id)
	p.gen++
}

// Gen changes whenever a node reports or leaves: a placement that found
// no node can succeed again only after it changed (or an avoidance ran
// out, see Avoid).
func (p *Placer) Gen() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// AvoidAfterFailure is how long a node that failed a placement (its
// create or assign request refused or unanswered) is skipped: long enough
// for the retry that follows to go elsewhere, short enough that a node
// back from a hiccup soon gets work again.
const AvoidAfterFailure = 2 * time.Second

// Avoid skips a node for d after it failed a placement.
func (p *Placer) Avoid(id string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pn := p.nodes[id]; pn != nil {
		pn.avoidUntil = time.Now().Add(d)
	}
}

// Serves reports whether a live node serves typ.
func (p *Placer) Serves(typ string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for _, pn := range p.nodes {
		if now.Sub(pn.seenAt) <= p.ttl && supports(pn.node.Types, typ) {
			return true
		}
	}
	return false
}

// Pick returns the least loaded matching node with free capacity, other
// than exclude, and counts one placement on it.
func (p *Placer) Pick(typ string, selectors map[string]string, exclude string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := p.best(typ, selectors, exclude, time.Now())
	if best == nil {
		return "", ErrNoCapacity
	}
	best.placed++
	return best.node.ID, nil
}

// best is the least loaded matching live node with free capacity, other
// than exclude; nil if none. The caller holds mu.
func (p *Placer) best(typ string, selectors map[string]string, exclude string, now time.Time) *placeNode {
	var best *placeNode
	var bestScore float64
	for id, pn := range p.nodes {
		if id == exclude || now.Sub(pn.seenAt) > p.ttl || now.Before(pn.avoidUntil) ||
			!matches(pn.node.Labels, selectors) || !supports(pn.node.Types, typ) {
			continue
		}
		load := pn.node.Load + pn.placed
		if pn.node.Capacity > 0 && load >= pn.node.Capacity {
			continue
		}
		score := float64(load+1) / float64(max(pn.node.Capacity, 1))
		if best == nil || score < bestScore || (score == bestScore && id < best.node.ID) {
			best, bestScore = pn, score
		}
	}
	return best
}

// Nodes returns the number of known nodes.
func (p *Placer) Nodes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.nodes)
}

// supports reports whether a node announcing types runs t.
func supports(types []string, t string) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}
