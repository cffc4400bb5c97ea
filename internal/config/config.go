// Package config holds the settings every Drover process shares: the NATS
// connection, the namespace, the timings and their invariants
// (docs/failover.md, Timings), logging and the HTTP listener. Each service embeds Common in
// its own envconfig struct under the DROVER_ prefix.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/drover-run/drover/pkg/topics"
)

// Common is shared by every service.
type Common struct {
	// NATSURL is DROVER_NATS_URL, else NATS_URL (natscli's), else
	// DefaultNATSURL.
	NATSURL      string `envconfig:"NATS_URL"`
	NATSCreds    string `envconfig:"NATS_CREDS"`
	NATSUser     string `envconfig:"NATS_USER"`
	NATSPassword string `envconfig:"NATS_PASSWORD"`
	NATSToken    string `envconfig:"NATS_TOKEN"`
	NATSNKeySeed string `envconfig:"NATS_NKEY_SEED_FILE"`
	// NATSNKey is the seed itself, for containers that get secrets as
	// variables (docker compose --env-file); the file is preferred.
	NATSNKey string `envconfig:"NATS_NKEY_SEED"`
	TLSCA    string `envconfig:"NATS_TLS_CA"`
	TLSCert  string `envconfig:"NATS_TLS_CERT"`
	TLSKey   string `envconfig:"NATS_TLS_KEY"`
	// SystemCreds, when set, lets the job manager watch $SYS disconnect
	// events to start failover within milliseconds of a crash.
	SystemCreds string `envconfig:"NATS_SYSTEM_CREDS"`
	SystemUser  string `envconfig:"NATS_SYSTEM_USER"`
	SystemPass  string `envconfig:"NATS_SYSTEM_PASSWORD"`
	SystemNKey  string `envconfig:"NATS_SYSTEM_NKEY_SEED_FILE"`
	SystemNKeyV string `envconfig:"NATS_SYSTEM_NKEY_SEED"`
	// JobMasterIdentities are the NATS identities (user names, nkey public
	// keys, or JWT user public keys or names) of job-master nodes,
	// comma-separated: only their disconnect events move masters.
	JobMasterIdentities string `envconfig:"JOBMASTER_IDENTITIES"`

	// TestJobTypes makes the stock binaries serve the test job types
	// (flaky, beat, stubborn) that the failure tests use.
	TestJobTypes bool `envconfig:"TEST_JOB_TYPES" default:"false"`

	Prefix   string `envconfig:"PREFIX" default:"drover"`
	Replicas int    `envconfig:"REPLICAS" default:"1"`

	NodeID string `envconfig:"NODE_ID"`

	HTTPAddr  string `envconfig:"HTTP_ADDR"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json"`
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info"`

	Timing
	Limits
}

// Limits bound every stream and bucket (docs/operations.md, "Limits"). All
// services open the store with them, so every service of a deployment
// must have the same; 0 in a Config built in code means the default.
type Limits struct {
	// JobsMaxBytes bounds the jobs bucket; a submit beyond it is refused
	// (unavailable), acknowledged records are never dropped.
	JobsMaxBytes int64 `envconfig:"JOBS_MAX_BYTES" default:"1073741824"`
	// StateMaxBytes bounds the master, worker and business records; a
	// write beyond it fails with a coded error, none is dropped.
	StateMaxBytes int64 `envconfig:"STATE_MAX_BYTES" default:"2147483648"`
	// EventsMaxBytes, EventsMaxAge and EventsMaxPerJob bound the events
	// stream; beyond them the oldest events are discarded (per job first).
	EventsMaxBytes  int64         `envconfig:"EVENTS_MAX_BYTES" default:"268435456"`
	EventsMaxAge    time.Duration `envconfig:"EVENTS_MAX_AGE" default:"168h"`
	EventsMaxPerJob int64         `envconfig:"EVENTS_MAX_PER_JOB" default:"100000"`
	// RequestsMaxMsgs and RequestsMaxBytes bound the durable requests
	// stream; a publish beyond them is refused, none is dropped.
	RequestsMaxMsgs  int64 `envconfig:"REQUESTS_MAX_MSGS" default:"100000"`
	RequestsMaxBytes int64 `envconfig:"REQUESTS_MAX_BYTES" default:"134217728"`
}

// Validate checks the limits (0 means the default).
func (l *Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{{"JOBS_MAX_BYTES", l.JobsMaxBytes}, {"STATE_MAX_BYTES", l.StateMaxBytes}, {"EVENTS_MAX_BYTES", l.EventsMaxBytes},
		{"EVENTS_MAX_PER_JOB", l.EventsMaxPerJob}, {"REQUESTS_MAX_MSGS", l.RequestsMaxMsgs}, {"REQUESTS_MAX_BYTES", l.RequestsMaxBytes},
		{"EVENTS_MAX_AGE", int64(l.EventsMaxAge)}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%w: DROVER_%s must not be negative", ErrInvalid, f.name))
		}
	}
	return errors.Join(errs...)
}

// Timing is the heartbeat and timeout schedule (docs/failover.md, Timings).
type Timing struct {
	Heartbeat       time.Duration `envconfig:"HEARTBEAT" default:"1s"`
	MasterTimeout   time.Duration `envconfig:"MASTER_TIMEOUT" default:"3s"`
	WorkerSelfFence time.Duration `envconfig:"WORKER_SELF_FENCE" default:"8s"`
	WorkerTimeout   time.Duration `envconfig:"WORKER_TIMEOUT" default:"10s"`
	LeaseTTL        time.Duration `envconfig:"LEASE_TTL" default:"5s"`
	CancelTimeout   time.Duration `envconfig:"CANCEL_TIMEOUT" default:"10s"`
	AssignTimeout   time.Duration `envconfig:"ASSIGN_TIMEOUT" default:"2s"`
}

// DefaultTiming returns the default schedule.
func DefaultTiming() Timing {
	return Timing{
		Heartbeat:       time.Second,
		MasterTimeout:   3 * time.Second,
		WorkerSelfFence: 8 * time.Second,
		WorkerTimeout:   10 * time.Second,
		LeaseTTL:        5 * time.Second,
		CancelTimeout:   10 * time.Second,
		AssignTimeout:   2 * time.Second,
	}
}

// ErrInvalid prefixes every configuration error.
var ErrInvalid = errors.New("config: invalid")

// Validate checks the timing invariants (docs/failover.md):
//   - a worker fences itself strictly before its master declares it dead,
//     so there are never two live copies of a worker;
//   - a worker outlives a master failover, so a master crash kills no
//     healthy worker;
//   - every timeout spans at least two heartbeats, so one lost heartbeat
//     is not a death.
func (t Timing) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if t.Heartbeat <= 0 {
		bad("DROVER_HEARTBEAT must be positive, got %s", t.Heartbeat)
	}
	if t.MasterTimeout < 2*t.Heartbeat {
		bad("DROVER_MASTER_TIMEOUT (%s) must be at least two heartbeats (%s)", t.MasterTimeout, 2*t.Heartbeat)
	}
	if t.WorkerSelfFence >= t.WorkerTimeout {
		bad("DROVER_WORKER_SELF_FENCE (%s) must be shorter than DROVER_WORKER_TIMEOUT (%s): otherwise a worker declared dead may still be running when its replacement starts", t.WorkerSelfFence, t.WorkerTimeout)
	}
	if t.WorkerSelfFence <= t.MasterTimeout+t.AssignTimeout+t.Heartbeat {
		bad("DROVER_WORKER_SELF_FENCE (%s) must be longer than a master failover (master timeout %s + assign timeout %s + heartbeat %s): otherwise a master crash stops healthy workers", t.WorkerSelfFence, t.MasterTimeout, t.AssignTimeout, t.Heartbeat)
	}
	if t.WorkerSelfFence < 2*t.Heartbeat {
		bad("DROVER_WORKER_SELF_FENCE (%s) must be at least two heartbeats", t.WorkerSelfFence)
	}
	if t.LeaseTTL < 2*t.Heartbeat {
		bad("DROVER_LEASE_TTL (%s) must be at least two heartbeats", t.LeaseTTL)
	}
	if t.CancelTimeout <= 0 || t.AssignTimeout <= 0 {
		bad("DROVER_CANCEL_TIMEOUT and DROVER_ASSIGN_TIMEOUT must be positive")
	}
	return errors.Join(errs...)
}

// Validate checks the shared settings.
func (c *Common) Validate() error {
	var errs []error
	if _, err := topics.New(c.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("%w: DROVER_PREFIX: %v", ErrInvalid, err))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("%w: DROVER_REPLICAS must be 1, 3 or 5, got %d", ErrInvalid, c.Replicas))
	}
	if c.NodeID != "" {
		if err := topics.ValidateID("node", c.NodeID); err != nil {
			errs = append(errs, fmt.Errorf("%w: DROVER_NODE_ID: %v", ErrInvalid, err))
		}
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("%w: DROVER_LOG_FORMAT must be json or console, got %q", ErrInvalid, c.LogFormat))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%w: DROVER_NATS_TLS_CERT and DROVER_NATS_TLS_KEY go together", ErrInvalid))
	}
	errs = append(errs, c.Timing.Validate(), c.Limits.Validate())
	return errors.Join(errs...)
}

// Space returns the namespace; Validate must have passed.
func (c *Common) Space() topics.Space { return topics.MustNew(c.Prefix) }

// Validator is a service config that checks itself.
type Validator interface{ Validate() error }

// Load fills cfg from DROVER_* variables and validates it.
func Load(cfg Validator) error {
	if err := envconfig.Process("drover", cfg); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c, ok := cfg.(interface{ natsFallback(func(string) string) }); ok {
		c.natsFallback(os.Getenv)
	}
	return cfg.Validate()
}

// DefaultNATSURL is where a process looks for NATS when nothing says.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// natsFallback fills the NATS URL from natscli's NATS_URL when
// DROVER_NATS_URL is not set, so one environment serves `nats`, `drover`
// and the services.
func (c *Common) natsFallback(getenv func(string) string) {
	if c.NATSURL == "" {
		c.NATSURL = getenv("NATS_URL")
	}
	if c.NATSURL == "" {
		c.NATSURL = DefaultNATSURL
	}
}

// NodeIDOr returns c.NodeID, or an ID derived from the host name and kind.
func (c *Common) NodeIDOr(kind string) string {
	if c.NodeID != "" {
		return c.NodeID
	}
	h, _ := os.Hostname()
	h = sanitize(h)
	if h == "" {
		h = "node"
	}
	id := fmt.Sprintf("%s-%s-%d", kind, h, os.Getpid())
	if len(id) > topics.MaxIDLen {
		id = id[:topics.MaxIDLen]
	}
	return id
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	return strings.Trim(b.String(), "-_")
}

// ParseLabels parses "k=v,k2=v2" node labels.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: DROVER_LABELS entry %q is not key=value", ErrInvalid, kv)
		}
		out[k] = v
	}
	return out, nil
}

// NodeTTL is how long a node's presence outlives its last heartbeat.
func (t Timing) NodeTTL() time.Duration { return 3 * t.Heartbeat }

// Node is the config of a node service: the common settings plus the
// node's capacity (0: the service's default) and labels.
type Node struct {
	Common
	Capacity int    `envconfig:"CAPACITY"`
	Labels   string `envconfig:"LABELS"`
	// CallbackTimeout bounds one call of job code (a master's or worker's
	// callback, a route handler); one that does not return in time fails
	// its incarnation. 0 means the runtime's default (60s).
	CallbackTimeout time.Duration `envconfig:"CALLBACK_TIMEOUT" default:"60s"`
	Storage
}

// Validate checks the node settings.
func (n *Node) Validate() error {
	errs := []error{n.Common.Validate(), n.Storage.Validate()}
	if n.CallbackTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_CALLBACK_TIMEOUT must not be negative, got %s", ErrInvalid, n.CallbackTimeout))
	}
	if n.Capacity < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_CAPACITY must not be negative, got %d", ErrInvalid, n.Capacity))
	}
	if _, err := ParseLabels(n.Labels); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
