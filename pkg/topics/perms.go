package topics

import (
	"fmt"
	"slices"
	"strings"
)

// Role is an identity class of a deployment. Each role's NATS permissions
// are built here, from the same builders the code publishes and subscribes
// with, so a permission cannot drift from the subject it guards
// (docs/security.md).
type Role string

// The roles of a deployment.
const (
	// RoleJobManager runs the API, the leader and placement: it creates
	// the buckets and streams, writes job records and the leader lease,
	// and is the only one to publish node control.
	RoleJobManager Role = "jobmanager"
	// RoleJobMaster runs masters: it writes master, worker and business
	// records and its own presence, talks to workers and the leader.
	RoleJobMaster Role = "jobmaster"
	// RoleWorker runs workers: it writes its worker and business records
	// and its presence, and talks to its masters.
	RoleWorker Role = "worker"
	// RoleClient submits, reads, lists, cancels and watches jobs through
	// the API and uses the data buckets; nothing internal.
	RoleClient Role = "client"
	// RoleAdmin is the operator: every subject and JetStream call of the
	// account.
	RoleAdmin Role = "admin"
)

// Roles lists every role, services first.
var Roles = []Role{RoleJobManager, RoleJobMaster, RoleWorker, RoleClient, RoleAdmin}

// Service reports whether the role is one of the three service processes.
func (r Role) Service() bool {
	return r == RoleJobManager || r == RoleJobMaster || r == RoleWorker
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: role %q (one of jobmanager, jobmaster, worker, client, admin)", ErrInvalidID, s)
}

// Permissions is what one role may publish and subscribe to. Only allow
// lists: whatever is not listed is refused by the server.
type Permissions struct {
	Publish   []string
	Subscribe []string
	// AllowResponses lets the role answer requests it received, on the
	// requester's reply subject only.
	AllowResponses bool
}

// PermOptions are the deployment choices the permissions depend on.
type PermOptions struct {
	// DataBuckets are the object-store buckets (names as given to
	// ObjectBucket) that clients and jobs may use. A JetStream stream name
	// is one subject token, so buckets cannot be granted by a wildcard:
	// each is listed.
	DataBuckets []string
	// WorkBucket is the nodes' scratch bucket; clients get no access.
	WorkBucket string
	// ServiceName is the NATS micro service name of the API, answered on
	// $SRV.PING|INFO|STATS.<name>; APIService when empty.
	ServiceName string
}

// APIService is the NATS micro service name of the job manager's API.
const APIService = "drover"

// NodeService is the NATS micro service name of a node of kind.
func NodeService(kind string) string { return "drover-" + kind }

// discovery is what answering $SRV discovery as service name takes.
func discovery(name string) []string {
	return []string{"$SRV.*", "$SRV.*." + name, "$SRV.*." + name + ".*"}
}

// ClientInbox is the reply-subject prefix of clients and the admin: the
// nats.go and nats CLI default.
const ClientInbox = "_INBOX"

// InboxPrefix is the reply-subject prefix a role's connections use. The
// services each have their own, so a client (which must subscribe to
// _INBOX.>) can not read the replies the services receive: JetStream
// reads of the state, control replies.
func (s Space) InboxPrefix(r Role) string {
	if r.Service() {
		return "_INBOX_" + s.prefix + "_" + string(r)
	}
	return ClientInbox
}

// Stream names of the buckets.

// KVStream is the stream behind KV bucket b.
func KVStream(bucket string) string { return "KV_" + bucket }

// ObjectStream is the stream behind object-store bucket b (full name).
func ObjectStream(bucket string) string { return "OBJ_" + bucket }

// KVSubjects matches every key of KV bucket b.
func KVSubjects(bucket string) string { return "$KV." + bucket + ".>" }

// KVKeys matches the keys of bucket b under key prefix p (tokens, no dots at the ends).
func KVKeys(bucket, p string) string { return "$KV." + bucket + "." + p + ".>" }

// ObjectSubjects matches every chunk and meta subject of object bucket b.
func ObjectSubjects(bucket string) string { return "$O." + bucket + ".>" }

// JetStream API access per stream, by what the holder may do with it.

// jsRead: stream info and single-message reads (KV Get, direct or through the leader).
func jsRead(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// jsInfo: a stream's configuration and counts only (opening a bucket
// looks its stream up).
func jsInfo(streams ...string) []string {
	var out []string
	for _, st := range streams {
		out = append(out, "$JS.API.STREAM.INFO."+st)
	}
	return out
}

// jsConsume: consumers (KV watch, object reads, durable intake), their
// fetches, acks and flow control.
func jsConsume(stream string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.ACK." + stream + ".>",
		"$JS.FC." + stream + ".>",
	}
}

// jsCreate: create the stream, and update its configuration.
func jsCreate(stream string) []string {
	return []string{"$JS.API.STREAM.CREATE." + stream, "$JS.API.STREAM.UPDATE." + stream}
}

// jsPurge: purge (by subject: an object's chunks, a job's records).
func jsPurge(stream string) []string {
	return []string{"$JS.API.STREAM.PURGE." + stream}
}

// Permissions returns role's permissions in this namespace.
func (s Space) Permissions(r Role, o PermOptions) (Permissions, error) {
	for _, b := range o.DataBuckets {
		if err := ValidateID("bucket", b); err != nil {
			return Permissions{}, err
		}
	}
	if o.WorkBucket != "" {
		if err := ValidateID("bucket", o.WorkBucket); err != nil {
			return Permissions{}, err
		}
	}
	svcName := o.ServiceName
	if svcName == "" {
		svcName = APIService
	}
	if err := ValidateID("service", svcName); err != nil {
		return Permissions{}, err
	}
	var p Permissions
	pub := func(subj ...string) { p.Publish = append(p.Publish, subj...) }
	sub := func(subj ...string) { p.Subscribe = append(p.Subscribe, subj...) }
	inbox := s.InboxPrefix(r) + ".>"

	jobs, state, nodes, leader := s.JobsBucket(), s.StateBucket(), s.NodesBucket(), s.LeaderBucket()
	requests, events := s.RequestsStream(), s.EventsStream()
	objects := func(names []string) []string {
		var out []string
		for _, n := range names {
			full, _ := s.ObjectBucket(n) // validated above
			out = append(out, full)
		}
		return out
	}
	// useObjects: what reading, writing and deleting objects takes; the
	// bucket is created on first use.
	useObjects := func(buckets []string) {
		for _, b := range objects(buckets) {
			st := ObjectStream(b)
			pub(jsRead(st)...)
			pub(jsConsume(st)...)
			pub("$JS.API.STREAM.CREATE."+st, "$JS.API.STREAM.PURGE."+st, ObjectSubjects(b))
		}
	}
	nodeBuckets := slices.Clone(o.DataBuckets)
	if o.WorkBucket != "" {
		nodeBuckets = append(nodeBuckets, o.WorkBucket)
	}

	switch r {
	case RoleJobManager:
		p.AllowResponses = true
		// events: the web console's live pages.
		sub(inbox, s.join("api", "v1", ">"), "$SRV.>", s.join("p2p", "manager", ">"), s.join("events", ">"))
		pub(s.join("api", "v1", ">"), s.join("p2p", ">"), s.join("events", ">"), "$SYS.REQ.USER.INFO", "$JS.API.INFO")
		for _, st := range []string{KVStream(jobs), KVStream(state), KVStream(nodes), KVStream(leader), requests, events} {
			pub(jsCreate(st)...)
			pub(jsRead(st)...)
			pub(jsConsume(st)...)
			pub(jsPurge(st)...)
		}
		pub(KVSubjects(jobs), KVSubjects(state), KVSubjects(leader))
	case RoleJobMaster:
		p.AllowResponses = true
		sub(inbox, wild(s.NodeControl(KindJobMaster, anyID)), wild(s.NodeStatus(KindJobMaster, anyID)),
			wild(s.MasterInbox(anyID)), wild(s.MasterHeartbeats(anyID)), wild(s.MasterHTTP(anyID)), wild(s.MasterMessages(anyID)))
		sub(discovery(NodeService(KindJobMaster))...)
		// Masters place their workers: they start and stop them on worker
		// nodes. Job-master nodes are controlled by the job manager only.
		pub(wild(s.NodeControl(KindWorker, anyID)), s.ManagerHeartbeat(), s.ManagerControl(),
			wild(s.WorkerInbox(anyID, anyID)), wild(s.WorkerMessages(anyID, anyID)), wild(s.WorkersBroadcast(anyID)),
			s.JobEventsPattern())
		for _, st := range []string{KVStream(jobs), KVStream(state), KVStream(nodes)} {
			pub(jsRead(st)...)
			pub(jsConsume(st)...)
		}
		pub(jsInfo(KVStream(leader), requests, events)...)
		pub(KVSubjects(state), KVKeys(nodes, KindJobMaster))
		useObjects(nodeBuckets)
	case RoleWorker:
		p.AllowResponses = true
		sub(inbox, wild(s.NodeControl(KindWorker, anyID)), wild(s.NodeStatus(KindWorker, anyID)),
			wild(s.WorkerInbox(anyID, anyID)), wild(s.WorkerMessages(anyID, anyID)), wild(s.WorkersBroadcast(anyID)))
		sub(discovery(NodeService(KindWorker))...)
		pub(wild(s.MasterInbox(anyID)), wild(s.MasterHeartbeats(anyID)), wild(s.MasterMessages(anyID)))
		for _, st := range []string{KVStream(state), KVStream(nodes)} {
			pub(jsRead(st)...)
			pub(jsConsume(st)...)
		}
		pub(jsInfo(KVStream(jobs), KVStream(leader), requests, events)...)
		pub(KVKeys(state, "w"), KVKeys(state, "b"), KVKeys(nodes, KindWorker))
		useObjects(nodeBuckets)
	case RoleClient:
		sub(inbox, s.JobEventsPattern(), s.RequestRejections())
		pub(s.join("api", "v1", ">"), s.JobRequests())
		for _, v := range []string{"PING", "INFO", "STATS"} {
			pub("$SRV."+v, "$SRV."+v+"."+svcName, "$SRV."+v+"."+svcName+".*")
		}
		useObjects(o.DataBuckets)
	case RoleAdmin:
		p.AllowResponses = true
		pub(">")
		sub(">")
	default:
		return Permissions{}, fmt.Errorf("%w: role %q", ErrInvalidID, r)
	}
	return p, nil
}

// anyID stands for any job, worker or node id in a builder's output;
// wild turns it into the '*' wildcard. It is a valid id (the builders
// check) that no constant token of a subject equals.
const anyID = "ANYxID"

// wild is the subscribe or publish pattern of a builder's subject: every
// anyID token (after the prefix) becomes '*'. A builder error is a bug
// of this file: the pattern then matches nothing.
func wild(subj string, err error) string {
	if err != nil {
		return "_INVALID"
	}
	toks := strings.Split(subj, ".")
	for i := 1; i < len(toks); i++ {
		if toks[i] == anyID {
			toks[i] = "*"
		}
	}
	return strings.Join(toks, ".")
}

// SystemDisconnects is the one subject the job manager's system-account
// identity may read: disconnect events of the Drover account.
func SystemDisconnects(account string) string { return "$SYS.ACCOUNT." + account + ".DISCONNECT" }
