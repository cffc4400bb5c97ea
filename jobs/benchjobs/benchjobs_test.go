package benchjobs

import (
	"testing"

	"github.com/drover-run/drover/pkg/framework"
)

func TestParseFanout(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		ok       bool
		workers  int
		interval int
	}{
		{`{}`, true, 1, 1000},
		{`{"workers": 0}`, true, 0, 1000}, // a master alone: the live10k phase's idle job
		{`{"workers": 100000, "interval_ms": 250}`, true, 100000, 250},
		{`{"workers": -1}`, false, 0, 0},
		{`{"workers": 100001}`, false, 0, 0},
		{`{"workers": 1, "interval_ms": 0}`, false, 0, 0},
	} {
		c, err := ParseFanout([]byte(tc.raw))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.raw, err, tc.ok)
			continue
		}
		if tc.ok && (c.Workers != tc.workers || c.IntervalMs != tc.interval) {
			t.Errorf("%s: got %+v", tc.raw, c)
		}
	}
}

func TestRegister(t *testing.T) {
	r := framework.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{Fanout, Active} {
		if _, ok := r.Type(name); !ok {
			t.Errorf("%s not registered", name)
		}
	}
	if _, ok := r.WorkerFactory(ActiveWorker); !ok {
		t.Errorf("worker type %s not registered", ActiveWorker)
	}
}
