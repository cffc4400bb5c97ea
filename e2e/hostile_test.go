package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/auth"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// attacker is one hostile connection: an identity (or none) and the
// permission errors the server sends it.
type attacker struct {
	name string
	nc   *nats.Conn
	errs chan error
}

func (c *Cluster) attacker(t *testing.T, who string, connName string) *attacker {
	t.Helper()
	a := &attacker{name: who, errs: make(chan error, 1024)}
	opts := []nats.Option{nats.Name(connName), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case a.errs <- err:
		default:
		}
	})}
	var err error
	if who == "anonymous" {
		a.nc, err = nats.Connect(c.URL, opts...)
	} else {
		a.nc, err = c.Connect(topics.Role(who), connName, opts...)
	}
	if err != nil {
		t.Fatalf("%s connects: %v", who, err)
	}
	t.Cleanup(a.nc.Close)
	return a
}

// refused waits for the server's permission error naming subject.
func (a *attacker) refused(subject string, within time.Duration) error {
	deadline := time.After(within)
	for {
		select {
		case err := <-a.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), fmt.Sprintf("%q", subject)) {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("no permission error for %s", subject)
		}
	}
}

// attack is one hostile action: a publish (with headers) or a subscribe.
type attack struct {
	what    string
	subject string
	sub     bool
	hdr     nats.Header
	data    []byte
}

func pub(what, subject string) attack {
	return attack{what: what, subject: subject, data: []byte(`{}`)}
}
func sub(what, subject string) attack { return attack{what: what, subject: subject, sub: true} }

// epochMsg is a control message claiming epoch e.
func epochMsg(what, subject, kind string, e uint64, body []byte) attack {
	h := nats.Header{}
	h.Set(wire.HdrKind, kind)
	h.Set(wire.HdrEpoch, fmt.Sprint(e))
	return attack{what: what, subject: subject, hdr: h, data: body}
}

func (a *attacker) run(at attack) error {
	if at.sub {
		s, err := a.nc.SubscribeSync(at.subject)
		if err != nil {
			return err
		}
		defer func() { _ = s.Unsubscribe() }()
	} else {
		m := &nats.Msg{Subject: at.subject, Header: at.hdr, Data: at.data}
		if err := a.nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return a.nc.Flush()
}

// TestHostileIdentities runs a table of attacks for each identity that is
// not a job manager: anonymous, client, worker and job-master. Every
// attack must be refused by the server (a permission error naming the
// subject), and none may change the running job: it finishes with the exact
// total, at the epoch it started with, its workers never re-created.
func TestHostileIdentities(t *testing.T) {
	c := NewCluster(t, Options{System: true, AllowViolations: true})
	mgr := c.Start(JobManager, "mgr-1")
	c.Start(JobMaster, "jm-1")
	c.Start(JobMaster, "jm-2")
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const job, workers, target = "victim", 3, 200
	c.Counter(job, workers, target, 30)
	running := c.WaitJob(job, 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	before := c.WaitWorkersOnline(job, workers, 20*time.Second)
	master := c.Master(job)

	sp := c.Space
	must := func(s string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	masterInbox := must(sp.MasterInbox(job))
	workerInbox := must(sp.WorkerInbox(job, before[0].ID))
	broadcast := must(sp.WorkersBroadcast(job))
	jmCtl := must(sp.NodeControl(topics.KindJobMaster, running.Node))
	wkCtl := must(sp.NodeControl(topics.KindWorker, "wk-1"))
	events := must(sp.JobEvents(job))
	maxEpoch := ^uint64(0)
	// A heartbeat of the job's first worker following a master epoch no
	// master has.
	claimHB := wire.Marshal(wire.HeartbeatBatch{Job: job, Workers: []wire.Heartbeat{{Worker: before[0].ID, Epoch: before[0].Epoch, Master: maxEpoch}}})

	// Every internal bucket and stream, and what may never be done to it
	// by anyone but the job manager and the operator.
	internal := []string{
		topics.KVStream(sp.JobsBucket()), topics.KVStream(sp.StateBucket()), topics.KVStream(sp.NodesBucket()),
		topics.KVStream(sp.LeaderBucket()), sp.RequestsStream(), sp.EventsStream(),
	}
	work := must(sp.ObjectBucket(auth.DefaultWorkBucket))
	var streamAttacks []attack
	for _, st := range append(internal, topics.ObjectStream(work)) {
		streamAttacks = append(streamAttacks,
			pub("delete stream "+st, "$JS.API.STREAM.DELETE."+st))
		// Nodes delete objects of the work bucket, which purges by subject.
		if st != topics.ObjectStream(work) {
			streamAttacks = append(streamAttacks, pub("purge stream "+st, "$JS.API.STREAM.PURGE."+st))
		}
		streamAttacks = append(streamAttacks,
			pub("reconfigure stream "+st, "$JS.API.STREAM.UPDATE."+st),
			pub("delete a message of "+st, "$JS.API.STREAM.MSG.DELETE."+st),
			pub("snapshot "+st, "$JS.API.STREAM.SNAPSHOT."+st),
		)
	}
	var consumerAttacks []attack
	for _, st := range internal {
		consumerAttacks = append(consumerAttacks,
			pub("consumer on "+st, "$JS.API.CONSUMER.CREATE."+st),
			pub("durable on "+st, "$JS.API.CONSUMER.CREATE."+st+".evil"),
			pub("legacy durable on "+st, "$JS.API.CONSUMER.DURABLE.CREATE."+st+".evil"),
		)
	}
	jobRecord := "$KV." + sp.JobsBucket() + "." + job
	leaderKey := "$KV." + sp.LeaderBucket() + ".leader"
	masterRecord := "$KV." + sp.StateBucket() + ".m." + job
	workerRecord := "$KV." + sp.StateBucket() + ".w." + job + "." + before[0].ID
	business := "$KV." + sp.StateBucket() + ".b." + job + ".total"
	common := []attack{
		pub("forge a job record", jobRecord),
		pub("take the leader lease", leaderKey),
		pub("create a stream capturing internal traffic", "$JS.API.STREAM.CREATE.evil"),
		pub("restore a stream", "$JS.API.STREAM.RESTORE.evil"),
		epochMsg("assign a master", jmCtl, wire.KindAssign, master.Epoch+1, []byte(`{"job":"`+job+`"}`)),
		epochMsg("stop a job-master node's master", jmCtl, wire.KindStopMaster, maxEpoch, nil),
		pub("spoof a system event in the account", "$SYS.ACCOUNT."+auth.Account+".DISCONNECT"),
		sub("answer the API in the job manager's place", sp.APISubmit()),
		sub("steal durable submissions", sp.JobRequests()),
		sub("read the job manager's replies", sp.InboxPrefix(topics.RoleJobManager)+".>"),
		// The leader takes a created event as stored on an answer there.
		pub("answer for the events stream to the job manager", sp.InboxPrefix(topics.RoleJobManager)+".x."+job+".1"),
		sub("read the leader's control traffic", sp.ManagerControl()),
	}
	clientOnly := []attack{
		pub("forge a master record", masterRecord),
		pub("forge a worker record", workerRecord),
		pub("forge a checkpoint", business),
		pub("register a node", "$KV."+sp.NodesBucket()+".worker.evil"),
		pub("write scratch objects", "$O."+work+".M.evil"),
		epochMsg("claim a higher epoch to the master", must(sp.MasterHeartbeats(job)), wire.KindHeartbeat, 0, claimHB),
		epochMsg("send the master a business message", must(sp.MasterMessages(job)), wire.KindMessage, master.Epoch, nil),
		epochMsg("send a worker a business message", must(sp.WorkerMessages(job, before[0].ID)), wire.KindMessage, master.Epoch, nil),
		pub("call a master's HTTP route directly", must(sp.MasterHTTP(job))),
		epochMsg("impersonate the master to a worker", workerInbox, wire.KindMessage, maxEpoch, nil),
		epochMsg("end the job for its workers", broadcast, wire.KindJobEnded, maxEpoch, nil),
		epochMsg("start a worker on a node", wkCtl, wire.KindCreate, master.Epoch, nil),
		pub("forge a job event", events),
		pub("read the state bucket", "$JS.API.DIRECT.GET."+topics.KVStream(sp.StateBucket())),
		sub("eavesdrop on internal traffic", sp.Prefix()+".p2p.>"),
		sub("read the master's inbox", masterInbox),
		sub("read every KV write", "$KV.>"),
	}
	notJobMaster := []attack{
		pub("forge a job-master heartbeat", sp.ManagerHeartbeat()),
		pub("forge a hand-over", sp.ManagerControl()),
	}
	clientOnly = append(clientOnly, pub("purge the work bucket", "$JS.API.STREAM.PURGE."+topics.ObjectStream(work)))
	nodeAttacks := []attack{
		sub("answer the API", sp.Prefix()+".api.v1.>"),
		sub("read the job manager's heartbeats", sp.ManagerHeartbeat()),
	}
	workerOnly := []attack{
		pub("forge a master record", masterRecord),
		pub("register as a job-master node", "$KV."+sp.NodesBucket()+".jobmaster.evil"),
		epochMsg("impersonate the master to a worker", workerInbox, wire.KindMessage, maxEpoch, nil),
		epochMsg("end the job for its workers", broadcast, wire.KindJobEnded, maxEpoch, nil),
		epochMsg("start a worker on another node", wkCtl, wire.KindCreate, master.Epoch, nil),
		sub("read the master's inbox", masterInbox),
	}
	jobmasterOnly := []attack{
		pub("register as a worker node", "$KV."+sp.NodesBucket()+".worker.evil"),
	}

	table := map[string][]attack{
		"anonymous": concat(common, notJobMaster, clientOnly, streamAttacks, consumerAttacks),
		"client":    concat(common, notJobMaster, clientOnly, streamAttacks, consumerAttacks),
		"worker":    concat(common, notJobMaster, workerOnly, nodeAttacks, streamAttacks, consumerAttacks[:3], consumerAttacks[9:]),
		"jobmaster": concat(common, jobmasterOnly, nodeAttacks, streamAttacks, consumerAttacks[9:]),
	}
	// Nodes may watch the state and nodes buckets, job-master nodes the
	// jobs bucket too; the slices above drop exactly those consumer
	// attacks: check it.
	if !strings.Contains(consumerAttacks[0].subject, sp.JobsBucket()) || !strings.Contains(consumerAttacks[9].subject, sp.LeaderBucket()) {
		t.Fatal("consumer attack order changed")
	}
	for _, who := range []string{"anonymous", "client", "worker", "jobmaster"} {
		t.Run(who, func(t *testing.T) {
			// Spoofed connection name: the name of the job's own node.
			a := c.attacker(t, who, "drover:jobmaster:"+running.Node)
			for _, at := range table[who] {
				if err := a.run(at); err != nil {
					t.Errorf("%s: %v", at.what, err)
					continue
				}
				if err := a.refused(at.subject, 5*time.Second); err != nil {
					t.Errorf("%s %s (%s): not refused by the server: %v", who, at.what, at.subject, err)
				}
			}
		})
	}

	// Defence in depth: what a worker identity may send, forged. A claim
	// of a newer master epoch is checked against the master record, so
	// the healthy master does not stop.
	t.Run("worker-forged-epochs", func(t *testing.T) {
		a := c.attacker(t, "worker", "drover:worker:wk-1")
		for i := 0; i < 5; i++ {
			for _, at := range []attack{
				epochMsg("claim a newer epoch in a heartbeat", must(sp.MasterHeartbeats(job)), wire.KindHeartbeat, 0, claimHB),
				epochMsg("claim a newer epoch in an exit", masterInbox, wire.KindExit, master.Epoch+1, []byte(`{}`)),
				epochMsg("claim a newer epoch in a message", must(sp.MasterMessages(job)), wire.KindMessage, maxEpoch, nil),
			} {
				if err := a.run(at); err != nil {
					t.Fatalf("%s: %v", at.what, err)
				}
			}
			time.Sleep(c.Timing.Heartbeat)
		}
		if m := c.Master(job); m.Epoch != master.Epoch {
			t.Fatalf("forged epochs moved the master: epoch %d → %d", master.Epoch, m.Epoch)
		}
	})

	// A job-master identity may send node heartbeats. One that names a
	// master the records do not place on that node at that epoch keeps
	// nothing alive: the leader counts it and ignores it.
	t.Run("jobmaster-forged-heartbeats", func(t *testing.T) {
		a := c.attacker(t, "jobmaster", "drover:jobmaster:jm-evil")
		for _, hb := range []wire.NodeHeartbeat{
			{Node: "jm-evil", Masters: []wire.MasterRef{{Job: job, Epoch: master.Epoch}}},
			{Node: running.Node, Masters: []wire.MasterRef{{Job: job, Epoch: master.Epoch + 5}}},
		} {
			if err := a.nc.PublishMsg(wire.NewMsg(sp.ManagerHeartbeat(), wire.KindNodeHeartbeat, 0, wire.Marshal(hb))); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		c.Eventually(20*time.Second, "the leader to ignore both forged heartbeats", func() bool {
			m, err := mgr.Metrics()
			return err == nil && Sum(m, "drover_jobmanager_ignored_heartbeats_total") >= 2
		})
	})

	// The JetStream calls as the library makes them fail too, and a
	// client's own data bucket still works.
	t.Run("client-jetstream", func(t *testing.T) {
		a := c.attacker(t, "client", "evil-client")
		js, _ := jetstream.New(a.nc)
		short := func() context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			t.Cleanup(cancel)
			return ctx
		}
		if err := js.DeleteKeyValue(short(), sp.JobsBucket()); err == nil {
			t.Error("client deleted the jobs bucket")
		}
		if _, err := js.KeyValue(short(), sp.StateBucket()); err == nil {
			t.Error("client opened the state bucket")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ob, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: must(sp.ObjectBucket("data"))})
		if err != nil {
			t.Fatalf("client cannot create its data bucket: %v\n%s", err, strings.Join(c.Violations(), "\n"))
		}
		if _, err := ob.PutString(ctx, "hello.txt", "hi"); err != nil {
			t.Fatalf("client cannot write its data bucket: %v", err)
		}
		if s, err := ob.GetString(ctx, "hello.txt"); err != nil || s != "hi" {
			t.Fatalf("client cannot read its data bucket: %q %v", s, err)
		}
	})

	// A disconnect event naming the job's node, from the client above: it
	// closed with its spoofed name. It must not have moved the job.
	final := c.WaitTerminal(job, 60*time.Second)
	c.CheckCounter(final, workers, target)
	if final.Epoch != running.Epoch || final.Node != running.Node {
		t.Errorf("job moved: epoch %d on %s, then %d on %s", running.Epoch, running.Node, final.Epoch, final.Node)
	}
	after := c.Workers(job)
	for i, b := range before {
		if i < len(after) && after[i].Epoch != b.Epoch {
			t.Errorf("worker %s re-created: epoch %d → %d", b.ID, b.Epoch, after[i].Epoch)
		}
	}
	// Every bucket and stream is still there.
	js, _ := jetstream.New(c.NC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, st := range internal {
		if _, err := js.Stream(ctx, st); err != nil {
			t.Errorf("stream %s: %v", st, err)
		}
	}
	if _, err := c.Client.Get(ctx, job); err != nil {
		t.Errorf("job record: %v", err)
	}
}

func concat(lists ...[]attack) []attack {
	var out []attack
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
