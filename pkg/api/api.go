// Package api holds the public v1 wire types of Drover: jobs, requests, replies
// and the coded errors that cross process boundaries. Everything here is JSON
// on NATS (and HTTP); changing it means a new versioned subject.
package api

import (
	"encoding/json"
	"time"
)

// MaxPayload bounds every API request body; larger ones get CodeTooLarge.
// It sits below NATS's default 1 MiB max_payload so that an oversized
// request reaches the job manager and gets a coded answer.
const MaxPayload = 512 << 10

// State is a job's lifecycle state.
type State string

// Job states. Terminal states never change again.
const (
	StateCreated   State = "created"
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateCanceling State = "canceling"
	StateFinished  State = "finished"
	StateFailed    State = "failed"
	StateCanceled  State = "canceled"
)

// Terminal reports whether no transition can leave s.
func (s State) Terminal() bool {
	return s == StateFinished || s == StateFailed || s == StateCanceled
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateCreated, StatePending, StateRunning, StateCanceling, StateFinished, StateFailed, StateCanceled:
		return true
	}
	return false
}

// MaxBackoffMs bounds the backoffs of a restart policy: 24 h, in ms.
const MaxBackoffMs = 24 * 60 * 60 * 1000

// RestartPolicy bounds how a failed master is restarted. Zero fields take the
// deployment's defaults; max_restarts is 0..1000, the backoffs 0..24 h.
type RestartPolicy struct {
	MaxRestarts    *int  `json:"max_restarts,omitempty"`
	InitialBackoff int64 `json:"initial_backoff_ms,omitempty"`
	MaxBackoff     int64 `json:"max_backoff_ms,omitempty"`
}

// Spec is what a client asks for; two submissions with the same id are the
// same job only if their specs are equal.
type Spec struct {
	ID        string            `json:"id,omitempty"`
	Type      string            `json:"type"`
	Config    json.RawMessage   `json:"config,omitempty"`
	Selectors map[string]string `json:"selectors,omitempty"`
	Restart   *RestartPolicy    `json:"restart,omitempty"`
}

// Job is the public job object.
type Job struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Config    json.RawMessage   `json:"config,omitempty"`
	Selectors map[string]string `json:"selectors,omitempty"`
	Restart   *RestartPolicy    `json:"restart,omitempty"`
	State     State             `json:"state"`
	Epoch     uint64            `json:"epoch"`
	Node      string            `json:"node,omitempty"`
	Restarts  int               `json:"restarts"`
	// Crashes counts the failovers in a row that coincided with the death
	// of the node running the job's master; reset once a master of the job
	// has run for the crash probation. At the crash-loop limit the job is
	// failed with crash_loop instead of being moved again.
	Crashes   int             `json:"crashes,omitempty"`
	Error     *Error          `json:"error,omitempty"`
	Detail    json.RawMessage `json:"detail,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`

	// NextAttemptAt is set while a failed master waits out its backoff.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// CancelRequestedAt is set when the job entered canceling.
	CancelRequestedAt *time.Time `json:"cancel_requested_at,omitempty"`
	// Truncated is set on a listed job whose config and detail were left
	// out because the job alone would not fit in a reply; get shows them.
	Truncated bool `json:"truncated,omitempty"`
}

// Spec returns the client-visible spec the job was created from.
func (j *Job) Spec() Spec {
	return Spec{ID: j.ID, Type: j.Type, Config: j.Config, Selectors: j.Selectors, Restart: j.Restart}
}

// GetRequest asks for one job.
type GetRequest struct {
	ID string `json:"id"`
}

// CancelRequest asks to cancel one job.
type CancelRequest struct {
	ID string `json:"id"`
}

// DeleteRequest asks to delete one ended job with all its records, events
// and scratch objects (an administrator's call).
type DeleteRequest struct {
	ID string `json:"id"`
}

// ListRequest asks for one page of jobs, in the order their records last
// changed. After is the Next of the previous page (an opaque cursor; empty
// for the first page). A page holds at most Limit jobs (1..1000, default
// 100) and may hold fewer, even none, with Next set: it is cut before the
// reply outgrows a NATS message and after a bounded number of reads when
// filters skip many jobs. Next is empty on the last page. Jobs come
// without detail unless Detail is set.
type ListRequest struct {
	State  State  `json:"state,omitempty"`
	Type   string `json:"type,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	After  string `json:"after,omitempty"`
	Detail bool   `json:"detail,omitempty"`
}

// WorkersRequest asks for one page of a job's workers, in id order. After
// is the Next of the previous page (the id of the last worker it read;
// empty for the first page). A page holds at most Limit workers (1..1000,
// default 100) and may hold fewer, even none, with Next set: it is cut
// before the reply outgrows a NATS message and after a bounded number of
// reads when the State filter skips many workers. Next is empty on the
// last page.
type WorkersRequest struct {
	ID    string `json:"id"`
	State string `json:"state,omitempty"`
	Limit int    `json:"limit,omitempty"`
	After string `json:"after,omitempty"`
}

// Reply is the envelope of every API reply: exactly one of Job, Jobs/Next,
// Nodes, Workers/Next/Total or Error is set.
type Reply struct {
	Job     *Job     `json:"job,omitempty"`
	Jobs    []Job    `json:"jobs,omitempty"`
	Next    string   `json:"next,omitempty"`
	Nodes   []Node   `json:"nodes,omitempty"`
	Workers []Worker `json:"workers,omitempty"`
	Total   int      `json:"total,omitempty"`
	Error   *Error   `json:"error,omitempty"`
}

// The success replies of each request. Their arrays are always present
// (empty, not null) so that a client can range over them without checks.
type (
	JobReply struct {
		Job *Job `json:"job"`
	}
	ListReply struct {
		Jobs []Job  `json:"jobs"`
		Next string `json:"next,omitempty"`
	}
	NodesReply struct {
		Nodes []Node `json:"nodes"`
	}
	// WorkersReply is one page of a job's workers; Total counts all the
	// job's worker records, whatever the page and its state filter.
	WorkersReply struct {
		Workers []Worker `json:"workers"`
		Next    string   `json:"next,omitempty"`
		Total   int      `json:"total"`
	}
)

// Node is a job-master or worker node as it announces itself.
type Node struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Labels    map[string]string `json:"labels,omitempty"`
	Capacity  int               `json:"capacity"`
	Load      int               `json:"load"`
	Types     []string          `json:"types,omitempty"`
	HTTPAddr  string            `json:"http_addr,omitempty"`
	StartedAt time.Time         `json:"started_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	// Server and ConnID name the node's current NATS connection (server
	// name, client id), so a $SYS disconnect event is matched to the
	// connection itself, not to a name any client can choose.
	Server string `json:"server,omitempty"`
	ConnID uint64 `json:"conn_id,omitempty"`
}

// Node kinds.
const (
	NodeJobMaster = "jobmaster"
	NodeWorker    = "worker"
)

// Event is one message on drover.events.jobs.<id>. Epoch is always the
// master epoch; Node is the job-master node, or the worker's node on worker
// events. Reason says why (see docs/operations.md for the values).
type Event struct {
	Job         string          `json:"job"`
	Kind        string          `json:"kind"` // state, master_moved, master_ready, worker_online, worker_offline
	State       State           `json:"state,omitempty"`
	Epoch       uint64          `json:"epoch"`
	Node        string          `json:"node,omitempty"`
	Worker      string          `json:"worker,omitempty"`
	WorkerEpoch uint64          `json:"worker_epoch,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Error       *Error          `json:"error,omitempty"`
	Detail      json.RawMessage `json:"detail,omitempty"`
	// Request is the sequence of a durable request in the requests
	// stream, on request_rejected events.
	Request uint64    `json:"request,omitempty"`
	Time    time.Time `json:"time"`
}

// StreamEvent is an event as the events history returns it: the event and
// its sequence in the events stream. Truncated says its detail was left out
// because it alone would not fit in a reply.
type StreamEvent struct {
	Seq uint64 `json:"seq"`
	Event
	Truncated bool `json:"truncated,omitempty"`
}

// EventsRequest asks for a job's events, oldest first, from SinceSeq (a
// stream sequence, typically the Next of the previous reply) or else from
// SinceTime; with neither, from the first event the stream keeps.
type EventsRequest struct {
	ID        string     `json:"id"`
	SinceSeq  uint64     `json:"since_seq,omitempty"`
	SinceTime *time.Time `json:"since_time,omitempty"`
	Limit     int        `json:"limit,omitempty"`
}

// EventsReply is the reply to an EventsRequest. Next is the sequence to ask
// from to continue, with no event missed or repeated.
type EventsReply struct {
	Events []StreamEvent `json:"events"`
	Next   uint64        `json:"next"`
}

// Event kinds.
const (
	EventState         = "state"
	EventMasterMoved   = "master_moved"
	EventWorkerOnline  = "worker_online"
	EventWorkerOffline = "worker_offline"
	EventMasterReady   = "master_ready"
	// EventWorkerWaiting: a worker waits for capacity (or a re-creation
	// backoff); Reason says which. Once per worker and reason, not per retry.
	EventWorkerWaiting = "worker_waiting"
	// EventRequestRejected is published on drover.events.requests.rejected
	// when a durable request can not be stored; Job is its id if it had
	// one, Error says why.
	EventRequestRejected = "request_rejected"
)

// Worker is one worker of a job as the API shows it.
type Worker struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Node      string          `json:"node"`
	Epoch     uint64          `json:"epoch"`
	State     string          `json:"state"`
	Reason    string          `json:"reason,omitempty"`
	Status    json.RawMessage `json:"status,omitempty"`
	Error     *Error          `json:"error,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Truncated is set on a listed worker whose status was left out
	// because the worker alone would not fit in a reply.
	Truncated bool `json:"truncated,omitempty"`
}
