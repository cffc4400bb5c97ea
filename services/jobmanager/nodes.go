package jobmanager

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// nodeCache follows job-master node presence for type checks and placement.
type nodeCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	nodes map[string]*cachedNode
}

type cachedNode struct {
	node api.Node
	// assigned counts masters placed since the node's last report.
	assigned int
	// avoidUntil skips a node that just failed an assignment.
	avoidUntil time.Time
	// seenAt is when the last report arrived: KV expiry of a crashed
	// node's presence sends no event, so silence is judged here.
	seenAt time.Time
}

func newNodeCache(ttl time.Duration) *nodeCache {
	return &nodeCache{ttl: ttl, nodes: map[string]*cachedNode{}}
}

func (c *nodeCache) live(cn *cachedNode, now time.Time) bool { return now.Sub(cn.seenAt) <= c.ttl }

func (c *nodeCache) run(ctx context.Context, st *kvstate.Store, log *zap.Logger) {
	for ctx.Err() == nil {
		w, err := st.WatchNodes(ctx, api.NodeJobMaster)
		if err != nil {
			log.Warn("watch job-master nodes", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			id := strings.TrimPrefix(e.Key(), api.NodeJobMaster+".")
			if e.Operation() != jetstream.KeyValuePut {
				c.mu.Lock()
				delete(c.nodes, id)
				c.mu.Unlock()
				continue
			}
			n, err := kvstate.DecodeNode(e)
			if err != nil {
				continue
			}
			c.mu.Lock()
			cn := c.nodes[id]
			if cn == nil {
				cn = &cachedNode{}
				c.nodes[id] = cn
			}
			cn.node, cn.assigned, cn.seenAt = *n, 0, time.Now()
			c.mu.Unlock()
		}
		_ = w.Stop()
	}
}

// serves reports whether a live node runs masters of jobType.
func (c *nodeCache) serves(jobType string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, cn := range c.nodes {
		if c.live(cn, now) && contains(cn.node.Types, jobType) {
			return true
		}
	}
	return false
}

// forget drops a node known to be gone (crashed or leaving).
func (c *nodeCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodes, id)
}

// avoid skips a node for a while after it failed an assignment.
func (c *nodeCache) avoid(id string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cn := c.nodes[id]; cn != nil {
		cn.avoidUntil = time.Now().Add(d)
	}
}

// pick returns the least loaded live node that serves the job's type,
// matches its selectors and has free capacity, and counts the assignment.
func (c *nodeCache) pick(j *api.Job, exclude string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var best *cachedNode
	var bestScore float64
	for id, cn := range c.nodes {
		if id == exclude || !c.live(cn, now) || now.Before(cn.avoidUntil) || !labelsMatch(cn.node.Labels, j.Selectors) || !contains(cn.node.Types, j.Type) {
			continue
		}
		load := cn.node.Load + cn.assigned
		if cn.node.Capacity > 0 && load >= cn.node.Capacity {
			continue
		}
		score := float64(load+1) / float64(max(cn.node.Capacity, 1))
		if best == nil || score < bestScore || (score == bestScore && id < best.node.ID) {
			best, bestScore = cn, score
		}
	}
	if best == nil {
		return "", false
	}
	best.assigned++
	return best.node.ID, true
}

func labelsMatch(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
