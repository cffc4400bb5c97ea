package svc

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/buildinfo"
	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
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
	st, err := OpenStore(ctx, &n.Cfg.Common, n.NC, n.Log, KVObserver(n.Registry), true)
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

// announce adds the node's micro service, whose one endpoint, status,
// answers the node's presence; the returned stop removes it.
func (n *Node) announce(node func() api.Node) (stop func(), err error) {
	me := node()
	md := map[string]string{"kind": n.Kind, "node": n.ID, "capacity": strconv.Itoa(n.Capacity),
		"types": strings.Join(me.Types, ","), "prefix": n.Store.Space().Prefix()}
	for k, v := range n.Labels {
		md["label."+k] = v
	}
	subj, err := n.Store.Space().NodeStatus(n.Kind, n.ID)
	if err != nil {
		return nil, err
	}
	srv, err := micro.AddService(n.NC, micro.Config{
		Name: topics.NodeService(n.Kind), Version: buildinfo.Version(),
		Description: "Drover " + n.Kind + " node " + n.ID,
		Metadata:    md,
		StatsHandler: func(*micro.Endpoint) any {
			return map[string]int{"load": node().Load, "capacity": n.Capacity}
		},
	})
	if err != nil {
		return nil, err
	}
	if err := srv.AddEndpoint("status", micro.HandlerFunc(func(req micro.Request) {
		_ = req.RespondJSON(node())
	}), micro.WithEndpointSubject(subj), micro.WithEndpointQueueGroupDisabled(),
		micro.WithEndpointMetadata(map[string]string{"request": "{}", "reply": "Node {kind, labels, capacity, load, …}"})); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	return func() { _ = srv.Stop() }, nil
}

// KeepPresence announces the node every heartbeat until ctx ends, then
// removes the announcement. load reports what the node runs now.
//
// Meanwhile the node is also a NATS micro service, drover-<kind>, so `nats
// micro ls` shows it with its kind, labels and capacity as metadata and
// its load in STATS (and from its status endpoint).
func (n *Node) KeepPresence(ctx context.Context, types []string, load func() int) {
	node := func() api.Node {
		cid, _ := n.NC.GetClientID()
		return api.Node{ID: n.ID, Kind: n.Kind, Labels: n.Labels, Capacity: n.Capacity, Load: load(),
			Types: types, HTTPAddr: n.httpAddr, StartedAt: n.started, UpdatedAt: time.Now().UTC(),
			Server: n.NC.ConnectedServerName(), ConnID: cid}
	}
	if stop, err := n.announce(node); err != nil {
		n.Log.Warn("not announced as a micro service", zap.Error(err))
	} else {
		defer stop()
	}
	KeepPresence(ctx, n.Store, n.Cfg.Heartbeat, n.Log, node)
}
