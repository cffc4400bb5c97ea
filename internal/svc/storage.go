package svc

import "github.com/drover-run/drover/pkg/framework"

// StorageConfig is the bucket storage the node gives its masters and workers.
func (n *Node) StorageConfig() framework.StorageConfig {
	return framework.StorageConfig{Enabled: n.Cfg.StorageEnabled(), WorkBucket: n.Cfg.WorkBucket(),
		Replicas: n.Cfg.Replicas}
}
