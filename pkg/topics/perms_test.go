package topics

import (
	"strings"
	"testing"
)

// matches reports whether NATS subject pattern p matches subject s.
func matches(p, s string) bool {
	pt, st := strings.Split(p, "."), strings.Split(s, ".")
	for i, tok := range pt {
		if tok == ">" {
			return len(st) > i
		}
		if i >= len(st) || (tok != "*" && tok != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

func allowed(list []string, subject string) bool {
	for _, p := range list {
		if matches(p, subject) {
			return true
		}
	}
	return false
}

// TestPermissionsFollowTheBuilders checks each role's grants against the
// subjects the code builds: what a role must do is allowed, what it must
// never do is not.
func TestPermissionsFollowTheBuilders(t *testing.T) {
	s := MustNew("dep")
	must := func(v string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	opts := PermOptions{DataBuckets: []string{"data"}, WorkBucket: "work"}
	perms := map[Role]Permissions{}
	for _, r := range Roles {
		p, err := s.Permissions(r, opts)
		if err != nil {
			t.Fatal(err)
		}
		perms[r] = p
	}
	data, work := must(s.ObjectBucket("data")), must(s.ObjectBucket("work"))
	type check struct {
		role    Role
		sub     bool
		subject string
		ok      bool
	}
	checks := []check{
		{RoleClient, false, s.APISubmit(), true},
		{RoleClient, false, s.JobRequests(), true},
		{RoleClient, false, "$SRV.PING." + APIService, true},
		{RoleClient, true, s.RequestRejections(), true},
		{RoleWorker, true, must(s.NodeStatus(KindWorker, "n1")), true},
		{RoleWorker, true, "$SRV.PING." + NodeService(KindWorker), true},
		{RoleWorker, true, "$SRV.PING." + NodeService(KindJobMaster), false},
		{RoleClient, true, must(s.NodeStatus(KindWorker, "n1")), false},
		{RoleClient, true, must(s.JobEvents("j1")), true},
		{RoleClient, true, "_INBOX.abc.def", true},
		{RoleClient, false, "$O." + data + ".C.x", true},
		{RoleClient, false, "$JS.API.STREAM.CREATE." + ObjectStream(data), true},
		{RoleClient, false, "$O." + work + ".C.x", false},
		{RoleClient, false, must(s.MasterInbox("j1")), false},
		{RoleClient, false, must(s.NodeControl(KindWorker, "n1")), false},
		{RoleClient, false, s.ManagerHeartbeat(), false},
		{RoleClient, false, must(s.JobEvents("j1")), false},
		{RoleClient, false, "$KV." + s.JobsBucket() + ".j1", false},
		{RoleClient, false, "$JS.API.STREAM.DELETE." + KVStream(s.JobsBucket()), false},
		{RoleClient, false, "$JS.API.CONSUMER.CREATE." + s.EventsStream(), false},
		{RoleClient, false, "$JS.API.STREAM.DELETE." + ObjectStream(data), false},
		{RoleClient, true, s.APISubmit(), false},
		{RoleClient, true, s.InboxPrefix(RoleJobManager) + ".x", false},
		{RoleClient, false, s.InboxPrefix(RoleJobManager) + ".x", false},
		{RoleWorker, false, s.InboxPrefix(RoleJobManager) + ".x", false},
		{RoleJobMaster, false, s.InboxPrefix(RoleJobManager) + ".x", false},
		{RoleWorker, false, must(s.MasterInbox("j1")), true},
		{RoleWorker, false, must(s.MasterMessages("j1")), true},
		{RoleWorker, false, must(s.MasterHeartbeats("j1")), true},
		{RoleWorker, true, must(s.MasterHeartbeats("j1")), false},
		{RoleJobMaster, true, must(s.MasterHeartbeats("j1")), true},
		{RoleClient, false, must(s.MasterHeartbeats("j1")), false},
		{RoleWorker, true, must(s.WorkerMessages("j1", "w1")), true},
		{RoleWorker, false, must(s.WorkerMessages("j1", "w1")), false},
		{RoleJobMaster, false, must(s.WorkerMessages("j1", "w1")), true},
		{RoleJobMaster, true, must(s.MasterMessages("j1")), true},
		{RoleJobMaster, true, must(s.MasterHTTP("j1")), true},
		{RoleClient, false, must(s.MasterMessages("j1")), false},
		{RoleClient, false, must(s.MasterHTTP("j1")), false},
		{RoleWorker, false, "$KV." + s.StateBucket() + ".w.j1.w1", true},
		{RoleWorker, false, "$KV." + s.StateBucket() + ".m.j1", false},
		{RoleWorker, false, "$KV." + s.NodesBucket() + ".worker.n1", true},
		{RoleWorker, false, "$KV." + s.NodesBucket() + ".jobmaster.n1", false},
		{RoleWorker, false, s.ManagerHeartbeat(), false},
		{RoleWorker, false, must(s.WorkerInbox("j1", "w2")), false},
		{RoleWorker, true, must(s.WorkerInbox("j1", "w2")), true},
		{RoleWorker, true, must(s.MasterInbox("j1")), false},
		{RoleJobMaster, false, s.ManagerHeartbeat(), true},
		{RoleJobMaster, false, must(s.WorkerInbox("j1", "w2")), true},
		{RoleJobMaster, false, must(s.NodeControl(KindWorker, "n1")), true},
		{RoleJobMaster, false, must(s.NodeControl(KindJobMaster, "n1")), false},
		{RoleJobMaster, false, "$KV." + s.StateBucket() + ".m.j1", true},
		{RoleJobMaster, false, "$KV." + s.JobsBucket() + ".j1", false},
		{RoleJobMaster, false, "$KV." + s.LeaderBucket() + ".leader", false},
		{RoleJobMaster, true, must(s.MasterInbox("j1")), true},
		{RoleJobMaster, true, s.APISubmit(), false},
		{RoleJobManager, false, must(s.NodeControl(KindJobMaster, "n1")), true},
		{RoleJobManager, false, "$KV." + s.JobsBucket() + ".j1", true},
		{RoleJobManager, false, "$JS.API.STREAM.CREATE." + KVStream(s.JobsBucket()), true},
		{RoleJobManager, false, "$JS.API.STREAM.DELETE." + KVStream(s.JobsBucket()), false},
		{RoleJobManager, true, s.APISubmit(), true},
		{RoleJobManager, true, "$SRV.PING." + APIService, true},
		{RoleJobManager, true, s.ManagerHeartbeat(), true},
		{RoleAdmin, false, "$JS.API.STREAM.DELETE." + KVStream(s.JobsBucket()), true},
	}
	for _, c := range checks {
		p := perms[c.role]
		list := p.Publish
		if c.sub {
			list = p.Subscribe
		}
		if got := allowed(list, c.subject); got != c.ok {
			t.Errorf("%s sub=%v %s: allowed %v, want %v", c.role, c.sub, c.subject, got, c.ok)
		}
	}
	// Another namespace's subjects are out of reach of every role but admin.
	other := MustNew("other")
	for _, r := range []Role{RoleClient, RoleWorker, RoleJobMaster, RoleJobManager} {
		for _, subj := range []string{other.APISubmit(), other.ManagerHeartbeat(), "$KV." + other.JobsBucket() + ".j"} {
			if allowed(perms[r].Publish, subj) || allowed(perms[r].Subscribe, subj) {
				t.Errorf("%s reaches %s of another namespace", r, subj)
			}
		}
	}
	if perms[RoleClient].AllowResponses {
		t.Error("clients answer requests")
	}
}

func TestPermissionsRefuseBadOptions(t *testing.T) {
	s := MustNew("dep")
	for _, o := range []PermOptions{{DataBuckets: []string{"a.b"}}, {WorkBucket: "*"}, {ServiceName: ">"}} {
		if _, err := s.Permissions(RoleClient, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := s.Permissions(Role("root"), PermOptions{}); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root)")
	}
}
