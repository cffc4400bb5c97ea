// Package topics owns every NATS subject, stream and bucket name Drover uses.
// Builders validate each variable token and return (string, error); publishers
// never get a wildcard from here, only the *Pattern builders return one.
package topics

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidID is returned for a job, worker or node ID that cannot be a subject token.
var ErrInvalidID = errors.New("topics: invalid id")

// MaxIDLen is the longest ID accepted.
const MaxIDLen = 64

// IDPattern is what an ID must match: a letter or digit, then up to 63
// letters, digits, '_' or '-'.
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`

// validID reports whether id matches IDPattern. It is on every message's
// path (a regexp was 1.6 % of an end-to-end job's CPU).
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidateID checks that id is a safe subject token and KV key part.
func ValidateID(kind, id string) error {
	if !validID(id) {
		switch {
		case id == "":
			return fmt.Errorf("%w: %s id is empty", ErrInvalidID, kind)
		case len(id) > MaxIDLen:
			return fmt.Errorf("%w: %s id is %d characters, at most %d", ErrInvalidID, kind, len(id), MaxIDLen)
		}
		return fmt.Errorf("%w: %s id %q must match %s", ErrInvalidID, kind, id, IDPattern)
	}
	return nil
}

// Kinds of node, as used in node subjects and presence keys.
const (
	KindJobMaster = "jobmaster"
	KindWorker    = "worker"
)

// Space is one deployment's namespace: every subject starts with its prefix,
// so several deployments can share a NATS account.
type Space struct {
	prefix string
}

// DefaultPrefix is the namespace used when none is configured.
const DefaultPrefix = "drover"

// New returns the namespace for prefix, which must itself be a valid ID.
func New(prefix string) (Space, error) {
	if err := ValidateID("prefix", prefix); err != nil {
		return Space{}, err
	}
	return Space{prefix: prefix}, nil
}

// MustNew is New for constants known to be valid.
func MustNew(prefix string) Space {
	s, err := New(prefix)
	if err != nil {
		panic(err)
	}
	return s
}

// Prefix returns the namespace prefix.
func (s Space) Prefix() string { return s.prefix }

func (s Space) join(tokens ...string) string {
	return s.prefix + "." + strings.Join(tokens, ".")
}

// Public v1 API (request/reply).

func (s Space) APISubmit() string { return s.join("api", "v1", "jobs", "submit") }
func (s Space) APIGet() string    { return s.join("api", "v1", "jobs", "get") }
func (s Space) APIList() string   { return s.join("api", "v1", "jobs", "list") }
func (s Space) APICancel() string { return s.join("api", "v1", "jobs", "cancel") }
func (s Space) APINodes() string  { return s.join("api", "v1", "nodes", "list") }
func (s Space) APIWorkers() string {
	return s.join("api", "v1", "jobs", "workers")
}

// APIDelete is the subject of deleting an ended job and all it left; an
// administrator's call.
func (s Space) APIDelete() string { return s.join("api", "v1", "jobs", "delete") }

// APIEvents is the subject of the events history of a job.
func (s Space) APIEvents() string { return s.join("api", "v1", "jobs", "events") }

// JobRequests is the durable submit subject, captured by the requests stream.
func (s Space) JobRequests() string { return s.join("jobs", "requests") }

// JobEvents is the subject of one job's events.
func (s Space) JobEvents(job string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	return s.join("events", "jobs", job), nil
}

// RequestRejections is the subject of the rejections of durable requests
// (drover.jobs.requests): a request that can not be stored is answered
// here, with its stream sequence and coded error. The events stream
// keeps them with the job events.
func (s Space) RequestRejections() string { return s.join("events", "requests", "rejected") }

// JobEventsPattern matches every job's events.
func (s Space) JobEventsPattern() string { return s.join("events", "jobs", ">") }

// Internal point-to-point subjects. They are per job, not per node, so a
// new master is reached by its workers with no address lookup.

// MasterInbox receives what workers and the job manager send to a job's master.
func (s Space) MasterInbox(job string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "master"), nil
}

// MasterHeartbeats receives a job's workers' heartbeats, on a subject (and
// so a subscription) of their own: they never queue behind the status and
// exit messages of MasterInbox, or the business messages of MasterMessages.
func (s Space) MasterHeartbeats(job string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "hb"), nil
}

// MasterHTTP receives HTTP requests forwarded to a job's master routes.
func (s Space) MasterHTTP(job string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "http"), nil
}

// WorkerInbox receives what a master sends to one of its workers.
func (s Space) WorkerInbox(job, worker string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	if err := ValidateID("worker", worker); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "worker", worker), nil
}

// MasterMessages receives, by request, the business messages a job's
// workers send its master: the reply says whether the master took it. It
// is apart from MasterInbox so heartbeats never queue behind messages.
func (s Space) MasterMessages(job string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "msg", "master"), nil
}

// WorkerMessages receives, by request, the business messages a master
// sends one of its workers, apart from the worker's acknowledgements.
func (s Space) WorkerMessages(job, worker string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	if err := ValidateID("worker", worker); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "msg", "worker", worker), nil
}

// WorkersBroadcast reaches every worker of a job (new master, job ended).
func (s Space) WorkersBroadcast(job string) (string, error) {
	if err := ValidateID("job", job); err != nil {
		return "", err
	}
	return s.join("p2p", "job", job, "workers"), nil
}

// NodeControl receives assignments and stop requests for one node.
func (s Space) NodeControl(kind, node string) (string, error) {
	if kind != KindJobMaster && kind != KindWorker {
		return "", fmt.Errorf("%w: node kind %q", ErrInvalidID, kind)
	}
	if err := ValidateID("node", node); err != nil {
		return "", err
	}
	return s.join("p2p", "node", kind, node), nil
}

// NodeStatus answers with one node's presence (its micro endpoint).
func (s Space) NodeStatus(kind, node string) (string, error) {
	subj, err := s.NodeControl(kind, node)
	if err != nil {
		return "", err
	}
	return subj + ".status", nil
}

// ManagerHeartbeat receives job-master nodes' heartbeats (their masters and epochs).
func (s Space) ManagerHeartbeat() string { return s.join("p2p", "manager", "hb") }

// ManagerControl receives master exits and node hand-overs for the leader.
func (s Space) ManagerControl() string { return s.join("p2p", "manager", "ctl") }

// Stream and bucket names.

func (s Space) name(suffix string) string { return s.prefix + "_" + suffix }

// RequestsStream captures JobRequests.
func (s Space) RequestsStream() string { return s.name("requests") }

// EventsStream captures every job's events.
func (s Space) EventsStream() string { return s.name("events") }

// JobsBucket holds job records.
func (s Space) JobsBucket() string { return s.name("jobs") }

// StateBucket holds master, worker and business records: one stream, so a
// business write can be fenced on the writer's record (docs/architecture.md).
func (s Space) StateBucket() string { return s.name("state") }

// NodesBucket holds node presence, expiring without heartbeats.
func (s Space) NodesBucket() string { return s.name("nodes") }

// LeaderBucket holds the job managers' leader lease.
func (s Space) LeaderBucket() string { return s.name("leader") }

// ObjectBucket names a job's object store bucket.
func (s Space) ObjectBucket(name string) (string, error) {
	if err := ValidateID("bucket", name); err != nil {
		return "", err
	}
	return s.name("obj_" + name), nil
}
