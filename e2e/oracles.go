package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
)

// CounterDetail is a finished counter job's detail.
type CounterDetail struct {
	Counts  map[string]int `json:"counts"`
	Total   int            `json:"total"`
	Workers int            `json:"workers"`
	Target  int            `json:"target"`
}

// CheckCounter fails the test unless the job finished with its exact total.
func (c *Cluster) CheckCounter(j *api.Job, workers, target int) {
	c.t.Helper()
	if err := CounterExact(j, workers, target); err != nil {
		c.t.Fatal(err)
	}
}

// CounterExact says why a counter job did not finish with total == workers*target.
func CounterExact(j *api.Job, workers, target int) error {
	if j.State != api.StateFinished {
		return fmt.Errorf("job %s ended %s (error %v), want finished", j.ID, j.State, j.Error)
	}
	var d CounterDetail
	if err := json.Unmarshal(j.Detail, &d); err != nil {
		return fmt.Errorf("job %s detail %s: %v", j.ID, j.Detail, err)
	}
	if d.Total != workers*target {
		return fmt.Errorf("job %s total %d, want %d exactly (counts %v)", j.ID, d.Total, workers*target, d.Counts)
	}
	for id, n := range d.Counts {
		if n != target {
			return fmt.Errorf("job %s worker %s counted %d, want %d", j.ID, id, n, target)
		}
	}
	return nil
}

// NodeOf returns the process among procs whose id is node.
func NodeOf(node string, procs ...*Proc) *Proc {
	for _, p := range procs {
		if p.ID == node {
			return p
		}
	}
	return nil
}

// ---- KV witness ----

// Witness records every write the state bucket accepted, in stream order,
// from when it started. Rejected (fenced) writes never reach the stream, so
// the witness sees what took effect. A record overwritten before the
// witness read it may be missed (History is 1), so checks on it only rely
// on order, never on completeness.
type Witness struct {
	mu      sync.Mutex
	entries []WitnessEntry
	cc      jetstream.ConsumeContext
}

// WitnessEntry is one accepted write.
type WitnessEntry struct {
	Seq     uint64
	Key     string
	Value   []byte
	Deleted bool
}

// StartWitness follows the state bucket from its first message.
func (c *Cluster) StartWitness() *Witness {
	c.t.Helper()
	js, _ := jetstream.New(c.NC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream := "KV_" + c.Space.StateBucket()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		c.t.Fatalf("witness: %v", err)
	}
	w := &Witness{}
	prefix := "$KV." + c.Space.StateBucket() + "."
	w.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		op := m.Headers().Get("KV-Operation")
		e := WitnessEntry{Seq: md.Sequence.Stream, Key: strings.TrimPrefix(m.Subject(), prefix),
			Value: append([]byte(nil), m.Data()...), Deleted: op == "DEL" || op == "PURGE"}
		w.mu.Lock()
		w.entries = append(w.entries, e)
		w.mu.Unlock()
	})
	if err != nil {
		c.t.Fatalf("witness: %v", err)
	}
	c.t.Cleanup(w.cc.Stop)
	return w
}

// Entries returns what the witness saw so far.
func (w *Witness) Entries() []WitnessEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WitnessEntry(nil), w.entries...)
}

// Check verifies, in the order the stream accepted the writes, that:
//   - every counter checkpoint (b.<job>.count.<worker>) and every beat
//     (b.<job>.beat.<who>) only ever went up: two live incarnations of a
//     worker or master making progress at once would write the same step
//     twice or go back;
//   - no worker record (w.<job>.<worker>) went back to an older worker
//     epoch, and no master record (m.<job>) to an older master epoch: a
//     stale incarnation's write never took effect after its successor's.
//
// It returns every violation found.
func (w *Witness) Check() []string {
	var bad []string
	counts := map[string]int{}
	epochs := map[string]uint64{}
	for _, e := range w.Entries() {
		if e.Deleted {
			delete(counts, e.Key)
			delete(epochs, e.Key)
			continue
		}
		switch {
		case strings.HasPrefix(e.Key, "b.") && (strings.Contains(e.Key, ".count.") || strings.Contains(e.Key, ".beat.")):
			n, err := strconv.Atoi(string(e.Value))
			if err != nil {
				bad = append(bad, fmt.Sprintf("seq %d %s: not a count: %q", e.Seq, e.Key, e.Value))
				continue
			}
			if prev, ok := counts[e.Key]; ok && n <= prev {
				bad = append(bad, fmt.Sprintf("seq %d %s: count %d after %d (two writers)", e.Seq, e.Key, n, prev))
			}
			counts[e.Key] = n
		case strings.HasPrefix(e.Key, "w.") || strings.HasPrefix(e.Key, "m."):
			var r struct {
				Epoch uint64 `json:"epoch"`
			}
			if json.Unmarshal(e.Value, &r) != nil {
				continue
			}
			if prev := epochs[e.Key]; r.Epoch < prev {
				bad = append(bad, fmt.Sprintf("seq %d %s: epoch %d written after epoch %d (stale writer)", e.Seq, e.Key, r.Epoch, prev))
			}
			epochs[e.Key] = max(epochs[e.Key], r.Epoch)
		}
	}
	return bad
}

// Count returns how many accepted writes the witness saw for keys with prefix.
func (w *Witness) Count(prefix string) int {
	n := 0
	for _, e := range w.Entries() {
		if strings.HasPrefix(e.Key, prefix) {
			n++
		}
	}
	return n
}

// ---- fenced writes ----

// FencedStops counts, in a process's log, the incarnations that stopped
// because they were fenced (a write refused, or a newer epoch seen).
func FencedStops(p *Proc) int {
	return p.CountLogs("fenced by a newer")
}

// MastersEnded returns the master incarnations ("job@epoch") that a
// job-master node's log shows ended, whatever the way: fenced, stopped,
// exited, or ended on an error (a request lost with its connection).
func MastersEnded(p *Proc) map[string]bool {
	out := map[string]bool{}
	for _, e := range p.Logs() {
		switch msg := e.Msg(); {
		case strings.Contains(msg, "fenced by a newer"), msg == "master stopped", msg == "master exited", msg == "master ended":
			out[fmt.Sprintf("%s@%d", e.Str("job_id"), int(e.Num("epoch")))] = true
		}
	}
	return out
}

// WorkersEnded returns the worker incarnations ("job/worker@epoch") that a
// worker node's log shows ended, whatever the way: fenced, self-fenced,
// stopped, exited.
func WorkersEnded(p *Proc) map[string]bool {
	out := map[string]bool{}
	for _, e := range p.Logs() {
		switch msg := e.Msg(); {
		case strings.Contains(msg, "fenced by a newer"), strings.Contains(msg, "fenced itself"),
			msg == "worker stopped by its master", msg == "worker exited", msg == "worker ended":
			out[fmt.Sprintf("%s/%s@%d", e.Str("job_id"), e.Str("worker_id"), int(e.Num("worker_epoch")))] = true
		}
	}
	return out
}

// RejectedWrites counts, in a process's log, the writes the server refused
// because a newer epoch existed: the runtime logs each one ("write
// refused: a newer epoch exists") and counts it in
// drover_runtime_fenced_writes_rejected_total.
func RejectedWrites(p *Proc) int {
	return p.CountLogs("write refused: a newer epoch exists")
}

// jsonLine is a helper for debugging output.
func jsonLine(v any) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	return strings.TrimSpace(b.String())
}
