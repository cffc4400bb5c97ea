// Command e2echeck is the oracle of the compose end-to-end test: it reads a
// job as printed by `drover get --json` and exits 0 only if the job ended
// in the expected state with exactly the expected counter total.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/drover-run/drover/pkg/api"
)

func main() {
	state := flag.String("state", string(api.StateFinished), "expected final state")
	total := flag.Int64("total", -1, "expected detail.total (-1: do not check)")
	flag.Parse()

	var job api.Job
	if err := json.NewDecoder(os.Stdin).Decode(&job); err != nil {
		fail("decode job: %v", err)
	}
	if string(job.State) != *state {
		fail("job %s: state %s, want %s (error %+v, detail %s)", job.ID, job.State, *state, job.Error, job.Detail)
	}
	if *total >= 0 {
		var d struct {
			Total *int64 `json:"total"`
		}
		if err := json.Unmarshal(job.Detail, &d); err != nil || d.Total == nil {
			fail("job %s: detail has no total: %s", job.ID, job.Detail)
		}
		if *d.Total != *total {
			fail("job %s: total %d, want %d (detail %s)", job.ID, *d.Total, *total, job.Detail)
		}
	}
	fmt.Printf("ok: job %s %s, total %s, restarts %d, epoch %d\n", job.ID, job.State, totalString(job.Detail), job.Restarts, job.Epoch)
}

func totalString(detail json.RawMessage) string {
	var d struct {
		Total json.RawMessage `json:"total"`
	}
	if json.Unmarshal(detail, &d) != nil || d.Total == nil {
		return "-"
	}
	return string(d.Total)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}
