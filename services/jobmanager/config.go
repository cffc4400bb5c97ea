// Package jobmanager is the job manager service: any replica serves the v1
// API (NATS and HTTP) and stores jobs; the replica holding the leader lease
// schedules masters onto job-master nodes, watches their heartbeats, moves
// them when their node dies or leaves, applies the restart policy and
// drives cancellation to an end.
package jobmanager

import (
	"errors"
	"fmt"
	"time"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/pkg/api"
)

// Config of a job manager replica (DROVER_ variables).
type Config struct {
	config.Common
	RestartBackoff    time.Duration `envconfig:"RESTART_BACKOFF" default:"1s"`
	RestartMaxBackoff time.Duration `envconfig:"RESTART_MAX_BACKOFF" default:"1m"`
	MaxRestarts       int           `envconfig:"MAX_RESTARTS" default:"10"`
	// RequestMaxDeliver bounds the deliveries of a durable request whose
	// storing failed for a reason that may pass; after the last it is
	// rejected (unavailable). Requests that can never be stored are
	// rejected at the first.
	RequestMaxDeliver int `envconfig:"REQUEST_MAX_DELIVER" default:"5"`
	// CrashLoopLimit is how many failovers in a row that coincide with the
	// death of the master's node fail a job with crash_loop (a master that
	// takes its node down must not take down one node after another).
	CrashLoopLimit int `envconfig:"CRASH_LOOP_LIMIT" default:"3"`
	// CrashProbation is how long a master must run after such a failover
	// before the job's crash count is reset; 0 means three master timeouts.
	CrashProbation time.Duration `envconfig:"CRASH_PROBATION"`
	// Retention is how long an ended job and everything it left (records,
	// events, scratch objects) are kept; `drover delete` removes one at once.
	Retention time.Duration `envconfig:"RETENTION" default:"168h"`
	// StorageBucket is the nodes' work bucket (DROVER_STORAGE_BUCKET), where
	// the job manager cleans the scratch space of jobs that ended without
	// their master, and of deleted jobs.
	StorageBucket string `envconfig:"STORAGE_BUCKET" default:"work"`

	// HTTP API authentication (docs/operations.md, "HTTP authentication").
	// HTTPTokensFile holds lines "<role> <token>"; HTTPTokens is
	// "<role>:<token>,…". Both may be set; roles are read, submit, admin.
	HTTPTokensFile string `envconfig:"HTTP_TOKENS_FILE"`
	HTTPTokens     string `envconfig:"HTTP_TOKENS"`
	// HTTPAnonymous is the role of a request without a token: none, read,
	// submit or admin. Empty means read when no token is configured (the
	// API is read-only until tokens are), none when tokens are.
	HTTPAnonymous string `envconfig:"HTTP_ANONYMOUS"`
	// HTTPTLSCert and HTTPTLSKey make the listener serve HTTPS only.
	HTTPTLSCert string `envconfig:"HTTP_TLS_CERT"`
	HTTPTLSKey  string `envconfig:"HTTP_TLS_KEY"`
	// UIMaxStreams bounds the console's live streams (Server-Sent Events)
	// open at once on this replica; one more is refused with 503.
	UIMaxStreams int `envconfig:"UI_MAX_STREAMS" default:"64"`
}

// Validate checks the config.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.RestartBackoff <= 0 || c.RestartMaxBackoff < c.RestartBackoff || c.RestartMaxBackoff > api.MaxBackoffMs*time.Millisecond {
		errs = append(errs, fmt.Errorf("%w: DROVER_RESTART_BACKOFF must be positive and at most DROVER_RESTART_MAX_BACKOFF, itself at most 24h", config.ErrInvalid))
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		errs = append(errs, fmt.Errorf("%w: DROVER_HTTP_TLS_CERT and DROVER_HTTP_TLS_KEY go together", config.ErrInvalid))
	}
	if c.UIMaxStreams < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_UI_MAX_STREAMS must not be negative", config.ErrInvalid))
	}
	if _, err := c.httpAuth(); err != nil {
		errs = append(errs, fmt.Errorf("%w: %v", config.ErrInvalid, err))
	}
	if c.RequestMaxDeliver < 1 || c.RequestMaxDeliver > 100 {
		errs = append(errs, fmt.Errorf("%w: DROVER_REQUEST_MAX_DELIVER must be 1..100", config.ErrInvalid))
	}
	if c.CrashLoopLimit < 2 {
		errs = append(errs, fmt.Errorf("%w: DROVER_CRASH_LOOP_LIMIT must be at least 2 (one node death proves nothing), got %d", config.ErrInvalid, c.CrashLoopLimit))
	}
	if c.CrashProbation < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_CRASH_PROBATION must not be negative", config.ErrInvalid))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_RETENTION must not be negative", config.ErrInvalid))
	}
	if c.MaxRestarts < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_MAX_RESTARTS must not be negative", config.ErrInvalid))
	}
	return errors.Join(errs...)
}

// crashProbation is CrashProbation with its default applied.
func (c *Config) crashProbation() time.Duration {
	if c.CrashProbation > 0 {
		return c.CrashProbation
	}
	return 3 * c.MasterTimeout
}

// crashLoopLimit is CrashLoopLimit with its default applied (a config
// built in code may leave it zero).
func (c *Config) crashLoopLimit() int {
	if c.CrashLoopLimit >= 2 {
		return c.CrashLoopLimit
	}
	return 3
}
