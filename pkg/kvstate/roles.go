package kvstate

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// The Store is handed out by role, as nats.go's jetstream splits its KV
// API: each service or package takes the few roles it uses (and may
// narrow them further where it consumes them), so what a piece of code
// can touch is visible in its types. *Store implements every role.

// Jobs are the job records and events: the job manager's.
type Jobs interface {
	CreateJob(ctx context.Context, job *api.Job) (uint64, error)
	GetJob(ctx context.Context, id string) (*api.Job, uint64, error)
	UpdateJob(ctx context.Context, id string, fn func(*api.Job) error) (*api.Job, uint64, error)
	UpdateJobFrom(ctx context.Context, cur *api.Job, rev uint64, fn func(*api.Job) error) (*api.Job, uint64, error)
	ScanJobs(ctx context.Context, after uint64, max int, fn func(j *api.Job, seq uint64) bool) (uint64, bool, error)
	WatchJobs(ctx context.Context) (*Watch[JobEvent], error)
	DeleteJob(ctx context.Context, id string) error
	JobEvents(ctx context.Context, q EventsQuery) ([]api.StreamEvent, uint64, error)
	LastJobEvent(ctx context.Context, job string) (*api.Event, error)
}

// Masters are the master records: epochs written by the leader, the
// master's own record under its fence.
type Masters interface {
	GetMaster(ctx context.Context, job string) (*MasterRecord, uint64, error)
	AdvanceEpoch(ctx context.Context, job string, fn func(*MasterRecord)) (*MasterRecord, *Fence, error)
	AdvanceEpochFrom(ctx context.Context, job string, cur *MasterRecord, rev uint64, fn func(*MasterRecord)) (*MasterRecord, *Fence, error)
	MasterFence(job string, rev uint64) *Fence
	PutMaster(ctx context.Context, f *Fence, rec *MasterRecord) error
	WatchMasters(ctx context.Context) (*Watch[MasterEvent], error)
}

// Workers are the worker records, written by a master under its fence or
// by the worker under its own.
type Workers interface {
	PutWorkerAsMaster(ctx context.Context, master *Fence, rec *WorkerRecord) (uint64, error)
	DeleteWorkerAsMaster(ctx context.Context, master *Fence, job, worker string) error
	WorkerFence(job, worker string, rev uint64) *Fence
	PutWorkerAsWorker(ctx context.Context, f *Fence, rec *WorkerRecord) error
	ListWorkers(ctx context.Context, job string) ([]WorkerEntry, error)
	WorkerIDs(ctx context.Context, job string) ([]string, error)
	PageWorkers(ctx context.Context, job string, ids []string, after string, max int, fn func(WorkerEntry) bool) (last string, end bool, err error)
	GetWorker(ctx context.Context, job, worker string) (*WorkerRecord, uint64, error)
}

// Presence is the nodes' liveness records.
type Presence interface {
	PutNode(ctx context.Context, n *api.Node) error
	DeleteNode(ctx context.Context, kind, id string) error
	GetNode(ctx context.Context, kind, id string) (*api.Node, error)
	ListNodes(ctx context.Context, kind string) ([]api.Node, error)
	WatchNodes(ctx context.Context, kind string) (*Watch[NodeEvent], error)
}

// BusinessKV opens a job's business records under a fence.
type BusinessKV interface {
	Business(job string, fence *Fence, onStale func(error)) *Business
}

// Elections hands out the deployment's leader election.
type Elections interface {
	Election() *Election
}

// Conn is what every role shares: the deployment and the JetStream
// context (object buckets), and a liveness check.
type Conn interface {
	Space() topics.Space
	JetStream() jetstream.JetStream
	Ping(ctx context.Context) error
}

var (
	_ Jobs       = (*Store)(nil)
	_ Masters    = (*Store)(nil)
	_ Workers    = (*Store)(nil)
	_ Presence   = (*Store)(nil)
	_ BusinessKV = (*Store)(nil)
	_ Elections  = (*Store)(nil)
	_ Conn       = (*Store)(nil)
)
