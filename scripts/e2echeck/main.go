// Command e2echeck is the oracle of the compose end-to-end test. It reads
// what `drover --json` printed on stdin and either checks a job
// (the default: exit 0 only if it ended in the expected state with exactly
// the expected counter total) or flattens a node or worker list into
// lines the shell script can reason about, or (refusals) checks that a
// connection without credentials is refused every internal action.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/drover-run/drover/pkg/api"
)

func main() {
	mode := flag.String("mode", "job", "job: check `drover get --json`; jobline: print its 'id state epoch node'; nodes: print 'kind id load' lines of `drover nodes --json`; workers: print 'id node epoch state' lines of `drover workers --json`")
	state := flag.String("state", string(api.StateFinished), "job mode: expected final state")
	total := flag.Int64("total", -1, "job mode: expected detail.total (-1: do not check)")
	url := flag.String("url", "", "refusals mode: NATS URL")
	admin := flag.String("admin", "", "refusals mode: the admin identity's seed file")
	flag.Parse()

	switch *mode {
	case "job":
		checkJob(*state, *total)
	case "jobline":
		var job api.Job
		decode(&job)
		fmt.Println(job.ID, job.State, job.Epoch, job.Node)
	case "nodes":
		var v struct {
			Nodes []struct {
				ID   string `json:"id"`
				Kind string `json:"kind"`
				Load int    `json:"load"`
			} `json:"nodes"`
		}
		decode(&v)
		for _, n := range v.Nodes {
			fmt.Println(n.Kind, n.ID, n.Load)
		}
	case "workers":
		var v struct {
			Workers []struct {
				ID    string `json:"id"`
				Node  string `json:"node"`
				Epoch uint64 `json:"epoch"`
				State string `json:"state"`
			} `json:"workers"`
		}
		decode(&v)
		for _, w := range v.Workers {
			fmt.Println(w.ID, w.Node, w.Epoch, w.State)
		}
	case "refusals":
		checkRefusals(*url, *admin)
	default:
		fail("unknown -mode %q", *mode)
	}
}

func checkJob(state string, total int64) {
	var job api.Job
	decode(&job)
	if string(job.State) != state {
		fail("job %s: state %s, want %s (error %v, detail %s)", job.ID, job.State, state, job.Error, job.Detail)
	}
	if total >= 0 {
		var d struct {
			Total *int64 `json:"total"`
		}
		if err := json.Unmarshal(job.Detail, &d); err != nil || d.Total == nil {
			fail("job %s: detail has no total: %s", job.ID, job.Detail)
		}
		if *d.Total != total {
			fail("job %s: total %d, want %d (detail %s)", job.ID, *d.Total, total, job.Detail)
		}
	}
	fmt.Printf("ok: job %s %s, total %s, restarts %d, epoch %d\n", job.ID, job.State, totalString(job.Detail), job.Restarts, job.Epoch)
}

func decode(v any) {
	if err := json.NewDecoder(os.Stdin).Decode(v); err != nil {
		fail("decode: %v", err)
	}
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
