package auth

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultDataBuckets are the object-store buckets clients and jobs may use
// unless the deployment names others (drover auth init --buckets).
var DefaultDataBuckets = []string{"data", "corpus", "hello"}

// DefaultWorkBucket is the nodes' scratch bucket (framework.DefaultWorkBucket).
const DefaultWorkBucket = "work"

// ServerOptions are the options of an embedded server enforcing the
// deployment's authorization, with JetStream in storeDir, listening on
// host:port (port -1: a random one).
func (d *Deployment) ServerOptions(host string, port int, storeDir string) (*server.Options, error) {
	opts, err := server.ProcessConfigFile(d.ServerConfig())
	if err != nil {
		return nil, fmt.Errorf("auth: server configuration: %w", err)
	}
	opts.Host, opts.Port = host, port
	opts.JetStream, opts.StoreDir = true, storeDir
	opts.NoSigs = true
	return opts, nil
}
