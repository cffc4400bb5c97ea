package svc

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Node is what the job-master and worker node services share: identity,
// labels and capacity, the state store, the control subscription, the
// operator HTTP listener and the presence heartbeat.
type Node struct {
	Kind     string
	ID       string
	Labels   map[string]string
	Capacity int
	Cfg      config.Node
	NC       *nats.Conn
	Log      *zap.Logger
	Registry *prometheus.Registry
	Store    *kvstate.Store
	started  time.Time
	httpAddr string
}

// NewNode prepares a node of kind; defaultCapacity applies when the config has none.
func NewNode(kind string, cfg config.Node, defaultCapacity int, nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (*Node, error) {
	labels, err := config.ParseLabels(cfg.Labels)
	if err != nil {
		return nil, err
	}
	if reg == nil {
		reg = obs.NewRegistry()
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = defaultCapacity
	}
	id := cfg.NodeIDOr(kind)
	return &Node{Kind: kind, ID: id, Labels: labels, Capacity: cfg.Capacity, Cfg: cfg, NC: nc,
		Log: log.With(zap.String("node", id)), Registry: reg, started: time.Now().UTC()}, nil
}

// Open opens the state store and subscribes onControl to the node's
// control subject; the returned function unsubscribes.
func (n *Node) Open(ctx context.Context, onControl nats.MsgHandler) (func(), error) {
	st, err := OpenStore(ctx, &n.Cfg.Common, n.NC, n.Log, KVObserver(n.Registry))
	if err != nil {
		return nil, err
	}
	n.Store = st
	subj, err := st.Space().NodeControl(n.Kind, n.ID)
	if err != nil {
		return nil, err
	}
	sub, err := n.NC.Subscribe(subj, onControl)
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// ServeHTTP serves /metrics, /healthz and /readyz until the returned stop
// is called; a port that cannot be bound is an error.
func (n *Node) ServeHTTP() (stop func(), err error) {
	srv := obs.NewServer(n.Registry, map[string]obs.Check{
		"nats": func(context.Context) error {
			if !n.NC.IsConnected() {
				return errors.New("not connected to NATS")
			}
			return nil
		},
		"state": func(ctx context.Context) error {
			if !n.NC.IsConnected() {
				return errors.New("no NATS connection to reach the buckets")
			}
			return n.Store.Ping(ctx)
		},
	}, nil)
	bound, stop, err := srv.Start(n.Cfg.HTTPAddr, n.Log)
	if err != nil {
		return nil, err
	}
	n.httpAddr = bound
	return stop, nil
}

// KeepPresence announces the node every heartbeat until ctx ends, then
// removes the announcement. load reports what the node runs now.
func (n *Node) KeepPresence(ctx context.Context, types []string, load func() int) {
	KeepPresence(ctx, n.Store, n.Cfg.Heartbeat, n.Log, func() api.Node {
		return api.Node{ID: n.ID, Kind: n.Kind, Labels: n.Labels, Capacity: n.Capacity, Load: load(),
			Types: types, HTTPAddr: n.httpAddr, StartedAt: n.started}
	})
}
