// Package builtin registers Drover's built-in job types; the stock
// job-manager, job-master and worker binaries all use it.
package builtin

import (
	"github.com/drover-run/drover/jobs/counter"
	"github.com/drover-run/drover/jobs/testjobs"
	"github.com/drover-run/drover/jobs/wordcount"
	"github.com/drover-run/drover/pkg/framework"
)

// Registry returns a registry holding every built-in job type.
func Registry() *framework.Registry {
	r := framework.NewRegistry()
	r.MustRegister(counter.Type())
	r.MustRegister(wordcount.Type())
	return r
}

// TestRegistry adds the test job types (flaky, beat, stubborn, crash) that drive
// the failure tests; binaries serve them only with DROVER_TEST_JOB_TYPES=true.
func TestRegistry() *framework.Registry {
	r := Registry()
	r.MustRegister(testjobs.FlakyType())
	r.MustRegister(testjobs.BeatType())
	r.MustRegister(testjobs.StubbornType())
	r.MustRegister(testjobs.CrashType())
	return r
}

// For returns TestRegistry when withTestTypes is set, Registry otherwise.
func For(withTestTypes bool) *framework.Registry {
	if withTestTypes {
		return TestRegistry()
	}
	return Registry()
}
