package svc

import "github.com/drover-run/drover/internal/runtime"

// StorageConfig is the bucket storage the node gives its masters and workers.
func (n *Node) StorageConfig() runtime.StorageConfig {
	return runtime.StorageConfig{Enabled: n.Cfg.StorageEnabled(), WorkBucket: n.Cfg.WorkBucket(),
		Replicas: n.Cfg.Replicas}
}
