package topics

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"job-1", true},
		{"A", true},
		{"a_b-C9", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"a.b", false},
		{"*", false},
		{">", false},
		{"a b", false},
		{"-lead", false},
		{"_lead", false},
		{"a\x00b", false},
		{"ünï", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := ValidateID("job", tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidID) {
				t.Fatalf("error %v does not wrap ErrInvalidID", err)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	s := MustNew("drover")
	if got, want := s.APISubmit(), "drover.api.v1.jobs.submit"; got != want {
		t.Errorf("APISubmit = %q, want %q", got, want)
	}
	if got, want := s.JobRequests(), "drover.jobs.requests"; got != want {
		t.Errorf("JobRequests = %q, want %q", got, want)
	}
	ev, err := s.JobEvents("j1")
	if err != nil || ev != "drover.events.jobs.j1" {
		t.Errorf("JobEvents = %q, %v", ev, err)
	}
	w, err := s.WorkerInbox("j1", "w2")
	if err != nil || w != "drover.p2p.job.j1.worker.w2" {
		t.Errorf("WorkerInbox = %q, %v", w, err)
	}
	n, err := s.NodeControl(KindWorker, "n1")
	if err != nil || n != "drover.p2p.node.worker.n1" {
		t.Errorf("NodeControl = %q, %v", n, err)
	}
	if s.StateBucket() != "drover_state" {
		t.Errorf("StateBucket = %q", s.StateBucket())
	}
}

func TestBuildersRefuseHostileTokens(t *testing.T) {
	s := MustNew("drover")
	for _, bad := range []string{"", "a.b", "*", ">", "a b", strings.Repeat("y", 65)} {
		builders := map[string]func() (string, error){
			"JobEvents":        func() (string, error) { return s.JobEvents(bad) },
			"MasterInbox":      func() (string, error) { return s.MasterInbox(bad) },
			"MasterHTTP":       func() (string, error) { return s.MasterHTTP(bad) },
			"MasterHeartbeats": func() (string, error) { return s.MasterHeartbeats(bad) },
			"WorkersBroadcast": func() (string, error) { return s.WorkersBroadcast(bad) },
			"WorkerInbox/job":  func() (string, error) { return s.WorkerInbox(bad, "w") },
			"WorkerInbox/wrk":  func() (string, error) { return s.WorkerInbox("j", bad) },
			"NodeControl":      func() (string, error) { return s.NodeControl(KindJobMaster, bad) },
			"ObjectBucket":     func() (string, error) { return s.ObjectBucket(bad) },
		}
		for name, b := range builders {
			if subj, err := b(); !errors.Is(err, ErrInvalidID) {
				t.Errorf("%s(%q) = %q, %v; want ErrInvalidID", name, bad, subj, err)
			}
		}
	}
	if _, err := s.NodeControl("other", "n1"); err == nil {
		t.Error("NodeControl accepted an unknown kind")
	}
	if _, err := New("a.b"); err == nil {
		t.Error("New accepted a dotted prefix")
	}
}

// idRe is IDPattern as a regexp: validID must agree with it.
var idRe = regexp.MustCompile(IDPattern)

func TestValidIDIsThePattern(t *testing.T) {
	for _, id := range []string{"", "a", "-a", "_a", "a-", "a_", "9", "é", "a\x00", "a b", "A-Z_09",
		strings.Repeat("y", 63), strings.Repeat("y", 64), strings.Repeat("y", 65), "a\n", "ab\u00e9"} {
		if got, want := validID(id), idRe.MatchString(id); got != want {
			t.Errorf("validID(%q) = %v, the pattern says %v", id, got, want)
		}
	}
}

func FuzzValidateID(f *testing.F) {
	f.Add("job-1")
	f.Add("a.b")
	f.Add("-a")
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := validID(id), idRe.MatchString(id); got != want {
			t.Fatalf("validID(%q) = %v, the pattern says %v", id, got, want)
		}
		if ValidateID("job", id) == nil {
			if strings.ContainsAny(id, ".*> \t\r\n") || id == "" || len(id) > MaxIDLen {
				t.Fatalf("accepted hostile id %q", id)
			}
		}
	})
}
