// Package wordcount is a map/reduce job over the JetStream Object Store:
// it counts the words of input objects and writes word → count and the top
// N to an output object. It is the worked example of a multi-phase data
// job on the SDK (docs/writing-jobs.md), and it is exact under faults: a
// task re-run after its worker was lost or fenced never counts twice.
//
// The master plans map tasks of bounded size (byte ranges of the inputs,
// see splitRange) and starts M map workers and R reduce workers at once.
// Map worker k runs the tasks i with i mod M == k: it counts the words of
// a task, writes one object per reducer (hash partition) under a name that
// is unique to its incarnation, and commits the task with one fenced
// business-KV write (map.<i>) naming those objects. Reduce worker r merges
// partition r of every committed map task as soon as it is committed, and
// when it has them all writes its sorted counts and commits reduce.<r> the
// same way. The master then merges the R sorted outputs into the output
// object and commits the result (result), which becomes the job's detail.
//
// Every decision is made from committed KV state, never from messages, so
// a recovered master, a re-created worker or a stale one that wakes up all
// reach the same result: uncommitted objects are never read, a committed
// task is never re-run, and a stale incarnation's commit is refused by its
// fence.
package wordcount

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/objstore"
	"github.com/drover-run/drover/pkg/topics"
)

// Name is the job type name.
const Name = "wordcount"

// Worker type names.
const (
	MapWorker    = "wordcount-map"
	ReduceWorker = "wordcount-reduce"
)

// Limits.
const (
	MaxReducers   = 256
	MaxMappers    = 1024
	MaxTop        = 1000
	MinSplitBytes = 64 << 10
	MaxSplitBytes = 1 << 30
	MaxInputs     = 10000
	MaxTasks      = 100000
	// liveTop is how many words each reducer reports while it runs, for
	// GET /top before the result exists.
	liveTop = 100
)

// Config is the job's config.
type Config struct {
	// Bucket holds the inputs (created with `drover put <bucket> …`).
	Bucket string `json:"bucket"`
	// Objects names the inputs; empty means every object under Prefix.
	Objects []string `json:"objects,omitempty"`
	Prefix  string   `json:"prefix,omitempty"`
	// Reducers is the number of reduce workers (hash partitions).
	Reducers int `json:"reducers,omitempty"`
	// Mappers is the number of map workers; each runs a share of the tasks.
	Mappers int `json:"mappers,omitempty"`
	// SplitBytes bounds the bytes of one map task.
	SplitBytes int64 `json:"split_bytes,omitempty"`
	// Output names the result object: "word\tcount\n" lines sorted by word;
	// the top N goes to Output + ".top.json". Default wordcount/<job>.tsv.
	Output string `json:"output,omitempty"`
	// OutputBucket holds the result; default Bucket.
	OutputBucket string `json:"output_bucket,omitempty"`
	// Top is how many of the most frequent words the detail carries.
	Top int `json:"top,omitempty"`
	// KeepScratch keeps the intermediate objects after the job.
	KeepScratch bool `json:"keep_scratch,omitempty"`
	// MaxWorkerRestarts bounds re-creations of a failed worker (lost
	// workers are always re-created).
	MaxWorkerRestarts int `json:"max_worker_restarts,omitempty"`
}

// ParseConfig decodes and checks a config, applying defaults; the output
// name's default needs the job id.
func ParseConfig(raw json.RawMessage, job string) (Config, error) {
	c := Config{Reducers: 4, Mappers: 4, SplitBytes: 8 << 20, Top: 10, MaxWorkerRestarts: 5}
	if len(raw) == 0 || string(raw) == "null" {
		return c, errors.New("wordcount config: bucket is required")
	}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("wordcount config: %w", err)
	}
	if c.OutputBucket == "" {
		c.OutputBucket = c.Bucket
	}
	if c.Output == "" {
		c.Output = OutputsPrefix + job + ".tsv"
	}
	if err := topics.ValidateID("bucket", c.Bucket); err != nil {
		return c, fmt.Errorf("wordcount config: bucket: %w", err)
	}
	if err := topics.ValidateID("output_bucket", c.OutputBucket); err != nil {
		return c, fmt.Errorf("wordcount config: output_bucket: %w", err)
	}
	if err := objstore.ValidateName(c.Output); err != nil {
		return c, fmt.Errorf("wordcount config: output: %w", err)
	}
	for _, o := range c.Objects {
		if err := objstore.ValidateName(o); err != nil {
			return c, fmt.Errorf("wordcount config: objects: %w", err)
		}
	}
	switch {
	case len(c.Objects) > 0 && c.Prefix != "":
		return c, errors.New("wordcount config: give objects or prefix, not both")
	case len(c.Objects) > MaxInputs:
		return c, fmt.Errorf("wordcount config: at most %d objects", MaxInputs)
	case c.Reducers < 1 || c.Reducers > MaxReducers:
		return c, fmt.Errorf("wordcount config: reducers must be 1..%d, got %d", MaxReducers, c.Reducers)
	case c.Mappers < 1 || c.Mappers > MaxMappers:
		return c, fmt.Errorf("wordcount config: mappers must be 1..%d, got %d", MaxMappers, c.Mappers)
	case c.SplitBytes < MinSplitBytes || c.SplitBytes > MaxSplitBytes:
		return c, fmt.Errorf("wordcount config: split_bytes must be %d..%d, got %d", MinSplitBytes, MaxSplitBytes, c.SplitBytes)
	case c.Top < 0 || c.Top > MaxTop:
		return c, fmt.Errorf("wordcount config: top must be 0..%d, got %d", MaxTop, c.Top)
	case c.MaxWorkerRestarts < 0:
		return c, fmt.Errorf("wordcount config: max_worker_restarts must not be negative")
	}
	if err := checkOutput(c, job); err != nil {
		return c, fmt.Errorf("wordcount config: output: %w", err)
	}
	return c, nil
}

// checkOutput refuses an output that would overwrite what the job reads or
// what it does not own: one of its inputs (or a name under its input
// prefix), the work bucket or its scratch layout (jobs/…), or another
// job's default output (wordcount/<other job>…).
func checkOutput(c Config, job string) error {
	names := []string{c.Output, c.Output + ".top.json"}
	if c.OutputBucket == "work" {
		return errors.New(`the work bucket holds the jobs' scratch spaces; choose another output_bucket`)
	}
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "jobs/"):
			return fmt.Errorf("%q is under jobs/, where scratch spaces live", n)
		case job != "" && strings.HasPrefix(n, OutputsPrefix) && !strings.HasPrefix(n, OutputsPrefix+job+"."):
			return fmt.Errorf("%q is under %s, where only job %s may write %s%s.*", n, OutputsPrefix, job, OutputsPrefix, job)
		}
		if c.OutputBucket != c.Bucket {
			continue
		}
		if c.Prefix == "" && len(c.Objects) == 0 && !strings.HasPrefix(n, OutputsPrefix) {
			// The whole bucket is the input: any name but wordcount/… is
			// (or may become) an input object the output would overwrite.
			return fmt.Errorf("%q is in the input bucket, which is read whole; write under %s or to another output_bucket", n, OutputsPrefix)
		}
		if c.Prefix != "" && strings.HasPrefix(n, c.Prefix) {
			return fmt.Errorf("%q is under the input prefix %q", n, c.Prefix)
		}
		if slices.Contains(c.Objects, n) {
			return fmt.Errorf("%q is one of the inputs", n)
		}
	}
	return nil
}

// OutputsPrefix is where wordcount jobs write by default (wordcount/<job>.tsv);
// a job reading a whole bucket never takes what is under it as input.
const OutputsPrefix = "wordcount/"

// Type returns the job type to register.
func Type() framework.JobType {
	return framework.JobType{
		Name: Name,
		Validate: func(raw json.RawMessage) error {
			_, err := ParseConfig(raw, "")
			return err
		},
		NewMaster: newMaster,
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			MapWorker:    newMapper,
			ReduceWorker: newReducer,
		},
		EndedRoutes: endedRoutes,
	}
}

// WordCount is one entry of a top list.
type WordCount struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

// Output names where the result is.
type Output struct {
	Bucket string `json:"bucket"`
	Name   string `json:"name"`
	Top    string `json:"top"`
}

// Detail is the job's detail: the phase while it runs, the totals and the
// top N once it finished.
type Detail struct {
	Phase      string      `json:"phase"`
	Inputs     int         `json:"inputs"`
	InputBytes int64       `json:"input_bytes"`
	MapTasks   int         `json:"map_tasks"`
	Mappers    int         `json:"mappers"`
	Reducers   int         `json:"reducers"`
	Words      int64       `json:"words,omitempty"`
	Distinct   int64       `json:"distinct,omitempty"`
	Output     Output      `json:"output"`
	Top        []WordCount `json:"top,omitempty"`
}

// Phases of Detail.Phase.
const (
	PhaseRunning = "map-reduce"
	PhaseWriting = "writing"
	PhaseDone    = "done"
)

// Business KV keys.
const (
	keyPlan   = "plan"
	keyResult = "result"
)

func mapKey(task int) string { return "map." + strconv.Itoa(task) }
func reduceKey(r int) string { return "reduce." + strconv.Itoa(r) }
func mapperID(k int) string  { return "map-" + strconv.Itoa(k) }
func reducerID(r int) string { return "reduce-" + strconv.Itoa(r) }
func attemptOf(id string, epoch uint64) string {
	return id + "-e" + strconv.FormatUint(epoch, 10)
}

// Scratch object names: unique per task (or partition) and incarnation,
// so a stale incarnation never overwrites what a newer one committed.
func mapObject(task int, attempt string, part int) string {
	return fmt.Sprintf("map/%d/%s/%d", task, attempt, part)
}

func reduceObject(part int, attempt string) string {
	return fmt.Sprintf("reduce/%d/%s", part, attempt)
}

// mapCommit is the value of map.<task>: the incarnation whose objects hold
// the task's output, one per partition.
type mapCommit struct {
	Attempt string `json:"attempt"`
	Words   int64  `json:"words"`
	Bytes   int64  `json:"bytes"`
}

// reduceCommit is the value of reduce.<r>.
type reduceCommit struct {
	Attempt  string      `json:"attempt"`
	Object   string      `json:"object"`
	Words    int64       `json:"words"`
	Distinct int64       `json:"distinct"`
	Top      []WordCount `json:"top,omitempty"`
}

// MapStatus is a map worker's status: bytes of its tasks done and in all.
type MapStatus struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	Tasks int   `json:"tasks"`
	Of    int   `json:"of"`
}

// ReduceStatus is a reduce worker's status. Done and Total are in input
// bytes (its share of them), so a job's progress, the sum over its
// workers, runs from 0 to twice the input size without a jump.
type ReduceStatus struct {
	Done   int64       `json:"done"`
	Total  int64       `json:"total"`
	Merged int         `json:"merged"`
	Of     int         `json:"of"`
	Top    []WordCount `json:"top,omitempty"`
}
