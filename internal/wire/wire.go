// Package wire holds Drover's internal protocol: the headers every message
// between job manager, masters, workers and nodes carries, and the bodies
// of the node control requests. None of it is public API.
package wire

import (
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/api"
)

// Headers. Every message carries its sender's epoch so a receiver can drop
// what a stale incarnation sends (docs/failover.md, Epochs and fences).
const (
	HdrKind        = "Drover-Kind"
	HdrEpoch       = "Drover-Epoch"        // master epoch
	HdrWorker      = "Drover-Worker"       // worker id
	HdrWorkerEpoch = "Drover-Worker-Epoch" // worker incarnation
	HdrTopic       = "Drover-Topic"        // business message topic
	HdrNode        = "Drover-Node"
	HdrReason      = "Drover-Reason"
)

// Message kinds.
const (
	// worker node → master: its workers' heartbeats (HeartbeatBatch)
	KindHeartbeat = "hb"
	// worker → master
	KindStatus  = "status"
	KindMessage = "msg"
	KindExit    = "exit"
	KindLeaving = "leaving"
	// master → worker node: the heartbeats it acknowledges (HeartbeatBatch)
	KindAck = "ack"
	// master → worker
	KindStop = "stop"
	// master → all workers of a job
	KindNewMaster = "master"
	KindJobEnded  = "ended"
	// job manager → master
	KindCancel = "cancel"
	// job manager → job-master node
	KindAssign     = "assign"
	KindStopMaster = "stop-master"
	// master → worker node
	KindCreate     = "create"
	KindStopWorker = "stop-worker"
	// job-master node / master → job manager
	KindNodeHeartbeat = "node-hb"
	KindHandover      = "handover"
)

// NewMsg builds a message of kind to subject with the sender's master epoch.
func NewMsg(subject, kind string, epoch uint64, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HdrKind, kind)
	m.Header.Set(HdrEpoch, strconv.FormatUint(epoch, 10))
	m.Data = data
	return m
}

// Uint reads a numeric header, 0 if absent or malformed.
func Uint(m *nats.Msg, key string) uint64 {
	if m.Header == nil {
		return 0
	}
	v, _ := strconv.ParseUint(m.Header.Get(key), 10, 64)
	return v
}

// SetUint sets a numeric header.
func SetUint(m *nats.Msg, key string, v uint64) {
	m.Header.Set(key, strconv.FormatUint(v, 10))
}

// Kind returns the kind header.
func Kind(m *nats.Msg) string {
	if m.Header == nil {
		return ""
	}
	return m.Header.Get(HdrKind)
}

// Assign asks a job-master node to run a job's master under a new epoch.
//
// It names the job only: the node reads the job (type, config) from the
// job record and checks the master record holds this epoch, revision and
// node, so a forged assignment can run nothing the leader did not write.
type Assign struct {
	Job   string `json:"job"`
	Epoch uint64 `json:"epoch"`
	// Rev is the master record revision the leader wrote: the master's fence.
	Rev uint64 `json:"rev"`
}

// Assignments is the body of an assign request: the leader sends a
// node's assignments together, those made while its previous request to
// the node was unanswered, so a node taking over many masters reads their
// records in one batch and answers them in one reply (AssignReplies).
type Assignments struct {
	Assign []Assign `json:"assign"`
}

// MaxAssignments bounds the assignments of one request; a node refuses a
// longer one whole.
const MaxAssignments = 256

// AssignReplies answers Assignments: one result per assignment, in
// order, or Error alone when the request as a whole was refused.
type AssignReplies struct {
	Error   *api.Error     `json:"error,omitempty"`
	Results []ControlReply `json:"results,omitempty"`
}

// StopMaster asks a node to stop a job's master incarnations up to Epoch
// without any write (it is fenced or handed over).
type StopMaster struct {
	Job   string `json:"job"`
	Epoch uint64 `json:"epoch"`
}

// CreateWorker asks a worker node to start one worker incarnation.
type CreateWorker struct {
	Job         string          `json:"job"`
	Worker      string          `json:"worker"`
	Type        string          `json:"type"`
	Config      json.RawMessage `json:"config,omitempty"`
	Epoch       uint64          `json:"epoch"`
	Rev         uint64          `json:"rev"`
	MasterEpoch uint64          `json:"master_epoch"`
	// PriorFailures is carried into the worker's own record writes
	// (kvstate.WorkerRecord.PriorFailures).
	PriorFailures int `json:"prior_failures,omitempty"`
}

// StopWorker asks a worker node to stop a worker incarnation up to Epoch.
type StopWorker struct {
	Job    string `json:"job"`
	Worker string `json:"worker"`
	Epoch  uint64 `json:"epoch"`
}

// MasterRef names one master incarnation.
type MasterRef struct {
	Job   string `json:"job"`
	Epoch uint64 `json:"epoch"`
}

// NodeHeartbeat is a job-master node's liveness report: the masters it runs.
type NodeHeartbeat struct {
	Node    string      `json:"node"`
	Masters []MasterRef `json:"masters"`
}

// Handover tells the leader a job-master node is leaving: move these now.
type Handover struct {
	Node    string      `json:"node"`
	Masters []MasterRef `json:"masters"`
}

// HeartbeatBatch is the body of a heartbeat message: a worker node's live
// workers of one job, sent together once per heartbeat interval (one
// message per job and node, not per worker), and of the master's answer,
// the heartbeats it acknowledged. Each entry is checked on its own: a
// batch fences nothing more than its entries would alone.
type HeartbeatBatch struct {
	Job     string      `json:"job"`
	Workers []Heartbeat `json:"workers"`
}

// Heartbeat is one worker incarnation's heartbeat, or its acknowledgement.
type Heartbeat struct {
	Worker string `json:"w"`
	Epoch  uint64 `json:"e"` // the worker incarnation
	// Master is the master epoch the worker follows (heartbeats only): a
	// higher one than the receiving master's is a claim it checks.
	Master uint64 `json:"m,omitempty"`
}

// MaxHeartbeatBatch bounds the entries of one heartbeat message: a node
// with more workers of a job sends several, and a master drops a message
// with more unread (a forged one).
const MaxHeartbeatBatch = 1024

// WorkerExit is the body of a worker's exit message.
type WorkerExit struct {
	State  string          `json:"state"`
	Error  *api.Error      `json:"error,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
	// Status is the final status the worker exited with, if it gave one
	// (framework.WorkerHandle.ExitWithStatus).
	Status json.RawMessage `json:"status,omitempty"`
}

// ControlReply answers a node control request.
type ControlReply struct {
	OK    bool       `json:"ok"`
	Error *api.Error `json:"error,omitempty"`
}

// Marshal encodes v; the types here always encode.
func Marshal(v any) []byte {
	b, err := api.Encode(v)
	if err != nil {
		panic("wire: " + err.Error())
	}
	return b
}

// HTTPRequest is an HTTP request forwarded by the job manager to a master.
type HTTPRequest struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Query  string              `json:"query,omitempty"`
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
}

// HTTPResponse is a master's answer to a forwarded HTTP request.
type HTTPResponse struct {
	Status int                 `json:"status"`
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
}
