// Package framework is Drover's SDK for job authors: the interfaces a job
// type implements (JobMaster, Worker), the handles the runtime gives them
// (MasterHandle, WorkerHandle), their options and errors, the storage
// interfaces, and the registry of job types that the job-master and worker
// nodes run. It holds no runtime: the nodes drive incarnations
// (internal/runtime), and a custom binary runs them with pkg/node.
//
// Every callback of a master runs on that master's single loop goroutine,
// and every callback of a worker on its worker's loop: job code needs no
// locks of its own.
package framework

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ExitReason is how a master or worker ends.
type ExitReason string

// Exit reasons.
const (
	ExitFinished ExitReason = "finished"
	ExitFailed   ExitReason = "failed"
	ExitCanceled ExitReason = "canceled"
)

// Offline reasons passed to OnWorkerOffline besides the exit reasons.
const (
	OfflineTimeout        = "heartbeat_timeout"
	OfflineNodeLeaving    = "node_leaving"
	OfflineDispatchFailed = "dispatch_failed"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrFenced: a newer incarnation exists; the write was refused and the
	// runtime stops this incarnation.
	ErrFenced = errors.New("framework: fenced by a newer epoch")
	// ErrNotFound: KV.Get of a key that does not exist.
	ErrNotFound = errors.New("framework: not found")
	// ErrRevisionMismatch: KV.CompareAndPut found the key at another
	// revision; nothing was written.
	ErrRevisionMismatch = errors.New("framework: key revision changed")
	ErrWorkerExists     = errors.New("framework: worker already live")
	ErrUnknownWorker    = errors.New("framework: unknown worker")
	// ErrNoCapacity reaches OnWorkerDispatched when no worker node with
	// free capacity matches the worker's type and selectors.
	ErrNoCapacity = errors.New("framework: no worker node with free capacity matches")
	ErrExited     = errors.New("framework: exited")
	// ErrNotDelivered: SendMessage could not hand the message to the
	// receiving incarnation (its queue is full, it ended, or nobody took it
	// before the deadline); the error says which.
	ErrNotDelivered = errors.New("framework: message not delivered")
)

// permanent marks an error that a restart cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks err as non-retryable: a master exiting failed with it
// fails the job at once instead of being restarted.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// WorkerInfo is what a master knows of one of its workers.
type WorkerInfo struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Node   string `json:"node"`
	Epoch  uint64 `json:"epoch"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Error is the error an ended worker exited with (Exit's err, or the
	// job_panic or job_hung of its code), nil for a clean end or a loss.
	Error *api.Error `json:"error,omitempty"`
	// Failures counts the incarnations of this worker id that ended failed
	// by their own code (Exit(ExitFailed, ...), a panic, a hang), this one
	// included once it has; dispatch failures and losses do not count. It
	// is persisted, so it holds across master failovers, and starts over
	// after RemoveWorker.
	Failures int             `json:"failures,omitempty"`
	Status   json.RawMessage `json:"status,omitempty"`
	Config   json.RawMessage `json:"config,omitempty"`
	Detail   json.RawMessage `json:"detail,omitempty"`
}

// Live reports whether the worker incarnation is waiting, created or online.
func (w WorkerInfo) Live() bool {
	return w.State == "created" || w.State == "online" || w.State == "waiting"
}

// KV is a job's business key/value state. Keys are dot-separated tokens of
// [A-Za-z0-9_-]; a job never sees another job's keys. Get of a missing key
// fails with an error wrapping ErrNotFound. Every write is fenced by the
// writer's epoch: once a newer incarnation exists it fails with an error
// wrapping ErrFenced, and the runtime stops the stale writer.
//
// Revisions are those of the whole bucket: they grow with every write of
// the deployment, not by one per key.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	Put(ctx context.Context, key string, val []byte) (uint64, error)
	Delete(ctx context.Context, key string) error
	Keys(ctx context.Context, prefix string) ([]string, error)
	// GetPrefix returns the keys that start with prefix ("" for all) with
	// their values and revisions, sorted by key.
	GetPrefix(ctx context.Context, prefix string) ([]KVEntry, error)
	// CompareAndPut writes key only if its revision is still rev, as
	// returned by Get, Put or GetPrefix (0: the key has no value). When
	// another write came first it fails with an error wrapping
	// ErrRevisionMismatch and writes nothing.
	CompareAndPut(ctx context.Context, key string, val []byte, rev uint64) (uint64, error)
	// Batch applies up to 100 puts and deletes atomically: every one of
	// them or, on any error, none. It returns the last write's revision.
	Batch(ctx context.Context, ops []KVOp) (uint64, error)
}

// KVEntry is one key of KV.GetPrefix.
type KVEntry = kvstate.BusinessEntry

// KVOp is one write of KV.Batch: Value put at Key, or Key deleted.
type KVOp = kvstate.BusinessOp

// Router registers a master's HTTP routes, served under
// /api/v1/jobs/{id}/ on the job manager and forwarded to the master.
// Patterns are net/http ServeMux patterns relative to that prefix, e.g.
// "GET /status".
type Router interface {
	Handle(pattern string, h http.Handler)
	HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request))
}

// CreateOption tunes CreateWorker.
type CreateOption func(*CreateOptions) error

// CreateOptions are what the CreateOption values of one CreateWorker call
// set; the runtime reads them.
type CreateOptions struct {
	ID        string
	Selectors map[string]string
}

// WithWorkerID gives the worker a stable id. Creating an id whose previous
// incarnation has ended starts a new incarnation (a higher worker epoch),
// which fences the old one.
func WithWorkerID(id string) CreateOption {
	return func(o *CreateOptions) error { o.ID = id; return nil }
}

// WithSelectors places the worker only on nodes whose labels match: per
// label key, a value ("eu"), in(a,b), notin(a,b), exists or !exists.
// Without it the worker inherits the job's selectors; an empty map
// places it on any node. An invalid form fails CreateWorker with
// invalid_argument.
func WithSelectors(sel map[string]string) CreateOption {
	return func(o *CreateOptions) error { o.Selectors = sel; return nil }
}

// MasterHandle is what the runtime gives a job master.
type MasterHandle interface {
	JobID() string
	JobType() string
	Config() json.RawMessage
	// Epoch is this master incarnation's epoch (CurrentEpoch).
	Epoch() uint64
	KV() KV
	Logger() *zap.Logger
	// Metrics registers job metrics; they carry job_type and job labels.
	Metrics() prometheus.Registerer
	// Workers returns every worker the master knows (GetWorkers).
	Workers() []WorkerInfo
	Worker(id string) (WorkerInfo, bool)
	// CreateWorker places and starts a worker; the outcome reaches
	// OnWorkerDispatched. It returns the worker id.
	CreateWorker(ctx context.Context, workerType string, config any, opts ...CreateOption) (string, error)
	// RemoveWorker forgets an ended worker: its record is deleted (fenced
	// by this master's epoch) and it leaves Workers. A later CreateWorker
	// with the same id starts afresh (Failures 0). Removing a live worker
	// fails with ErrWorkerExists, an unknown one with ErrUnknownWorker.
	RemoveWorker(ctx context.Context, id string) error
	// UpdateJobStatus persists detail as the job's detail (shown by get).
	UpdateJobStatus(ctx context.Context, detail any) error
	// SendMessage sends a business message to one worker's OnMasterMessage.
	// It returns nil once the worker's runtime has queued it: the worker
	// gets it, in order, unless its incarnation ends first. A worker that
	// is created but not yet listening gets it once it is: the call waits
	// for that until ctx ends (10 s when ctx has no deadline). Otherwise it
	// returns an error wrapping ErrNotDelivered — the worker's queue is
	// full (256 messages), the worker ended, or nobody took the message in
	// time (then, rarely, it may still have been queued) — or
	// ErrUnknownWorker. Never a silent loss.
	SendMessage(ctx context.Context, workerID, topic string, payload []byte) error
	// Exit ends the master: it stops the workers, persists reason, err and
	// detail, and tells the job manager at once.
	Exit(reason ExitReason, err error, detail any)
	// IsMasterReady is false after a recovery until every live worker has
	// re-attached to this epoch or timed out.
	IsMasterReady() bool
	// Storage is the job's bucket storage; false when the deployment
	// disabled it (DROVER_STORAGE=off).
	Storage() (Storage, bool)
}

// JobMaster is implemented by a job type's master. Embed BaseJobMaster for
// no-op defaults.
type JobMaster interface {
	// Init runs on a job's first start (InitImpl).
	Init(ctx context.Context) error
	// Tick runs every TickInterval.
	Tick(ctx context.Context) error
	// OnMasterRecovered runs instead of Init when the master restarts with a
	// new epoch; the workers are then re-announced (OnWorkerOnline for each
	// live one as it re-attaches, OnWorkerOffline for each that ended).
	OnMasterRecovered(ctx context.Context) error
	OnWorkerDispatched(w WorkerInfo, err error) error
	OnWorkerOnline(w WorkerInfo) error
	OnWorkerOffline(w WorkerInfo, reason string) error
	OnWorkerStatusUpdated(w WorkerInfo, status json.RawMessage) error
	OnWorkerMessage(w WorkerInfo, topic string, payload []byte) error
	// OnCancel runs once when the job is canceled; the default exits canceled.
	OnCancel(ctx context.Context) error
	OnOpenAPIInitialized(r Router)
	// Close runs after Exit (CloseImpl).
	Close(ctx context.Context) error
	// Stop runs when the master is stopped without exiting: fenced, handed
	// over or node shutdown (StopImpl). It must not write state.
	Stop(ctx context.Context)
}

// Worker is implemented by a job type's worker. Embed BaseWorker for defaults.
type Worker interface {
	Init(ctx context.Context) error
	Tick(ctx context.Context) error
	OnMasterMessage(ctx context.Context, topic string, payload []byte) error
	Close(ctx context.Context) error
}

// TickIntervaler may be implemented by a JobMaster or Worker to choose its tick.
type TickIntervaler interface {
	TickInterval() time.Duration
}

// WorkerHandle is what the runtime gives a worker.
type WorkerHandle interface {
	JobID() string
	WorkerID() string
	// Epoch is this worker incarnation's epoch.
	Epoch() uint64
	Config() json.RawMessage
	KV() KV
	Logger() *zap.Logger
	// Metrics registers the worker's metrics; they carry job and worker
	// labels (one series per worker: mind the cardinality) and are
	// unregistered when the worker incarnation ends.
	Metrics() prometheus.Registerer
	// UpdateStatus persists status in the worker record and reports it to
	// the master (OnWorkerStatusUpdated).
	UpdateStatus(ctx context.Context, status any) error
	// SendMessage sends a business message to the master's
	// OnWorkerMessage, with MasterHandle.SendMessage's guarantee: nil once
	// the master's runtime queued it (1024 at most); during a master
	// failover it waits for the next master until ctx ends.
	SendMessage(ctx context.Context, topic string, payload []byte) error
	// Exit ends the worker and reports it to the master (OnWorkerOffline).
	Exit(reason ExitReason, err error, detail any)
	// ExitWithStatus is Exit with status as the worker's final status,
	// persisted in the same write as its end: one write where
	// UpdateStatus then Exit cost two. The master sees it in the
	// WorkerInfo.Status of OnWorkerOffline, not in OnWorkerStatusUpdated.
	ExitWithStatus(reason ExitReason, err error, detail, status any)
	// Storage is the job's bucket storage; false when the deployment
	// disabled it (DROVER_STORAGE=off).
	Storage() (Storage, bool)
}

// BaseJobMaster gives no-op defaults; embed it and keep the handle in H.
type BaseJobMaster struct{ H MasterHandle }

func (BaseJobMaster) Init(context.Context) error                              { return nil }
func (BaseJobMaster) Tick(context.Context) error                              { return nil }
func (BaseJobMaster) OnMasterRecovered(context.Context) error                 { return nil }
func (BaseJobMaster) OnWorkerDispatched(WorkerInfo, error) error              { return nil }
func (BaseJobMaster) OnWorkerOnline(WorkerInfo) error                         { return nil }
func (BaseJobMaster) OnWorkerOffline(WorkerInfo, string) error                { return nil }
func (BaseJobMaster) OnWorkerStatusUpdated(WorkerInfo, json.RawMessage) error { return nil }
func (BaseJobMaster) OnWorkerMessage(WorkerInfo, string, []byte) error        { return nil }
func (BaseJobMaster) OnOpenAPIInitialized(Router)                             {}
func (BaseJobMaster) Close(context.Context) error                             { return nil }
func (BaseJobMaster) Stop(context.Context)                                    {}

// OnCancel exits canceled.
func (b BaseJobMaster) OnCancel(context.Context) error {
	b.H.Exit(ExitCanceled, nil, nil)
	return nil
}

// BaseWorker gives no-op defaults; embed it and keep the handle in H.
type BaseWorker struct{ H WorkerHandle }

func (BaseWorker) Init(context.Context) error                            { return nil }
func (BaseWorker) Tick(context.Context) error                            { return nil }
func (BaseWorker) OnMasterMessage(context.Context, string, []byte) error { return nil }
func (BaseWorker) Close(context.Context) error                           { return nil }
