// Package testjobs holds job types that exist to exercise Drover's failure
// handling, registered in the stock binaries next to counter so the
// end-to-end tests run them as real processes:
//
//   - flaky: its master fails (retryable, or permanently) a given number of
//     attempts, counted in business KV, then runs for a while and finishes.
//     It drives the restart policy tests.
//   - beat: its master and its workers each write a beat counter to
//     business KV every tick, burst writes at a time, resuming from the last
//     beat after a restart; the master finishes after a number of beats or
//     runs until canceled. A frozen beat process is almost always in the
//     middle of a write, which makes it the fencing tests' zombie.
//   - stubborn: a beat job whose master ignores OnCancel, so only the job
//     manager's forced cancel can end it.
//   - crash: its code panics, hangs or kills its process at a chosen place
//     (crash.go); it drives the isolation tests.
//
// They are harmless in a deployment but of no use there.
package testjobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
)

// Job type names.
const (
	Flaky    = "flaky"
	Beat     = "beat"
	Stubborn = "stubborn"
	// BeatWorker is the worker type of beat and stubborn jobs.
	BeatWorker = "beat"
)

// FlakyConfig configures a flaky job.
type FlakyConfig struct {
	// FailTimes is how many attempts fail before one succeeds.
	FailTimes int `json:"fail_times"`
	// Permanent makes the failures non-retryable (framework.Permanent).
	Permanent bool `json:"permanent,omitempty"`
	// RunMS is how long the successful attempt runs before it finishes.
	RunMS int `json:"run_ms,omitempty"`
}

// BeatConfig configures a beat or stubborn job.
type BeatConfig struct {
	Workers    int `json:"workers"`
	IntervalMS int `json:"interval_ms,omitempty"`
	// Burst is how many beats each tick writes, one after the other.
	Burst int `json:"burst,omitempty"`
	// Beats ends the job once the master wrote that many (0: never).
	Beats int `json:"beats,omitempty"`
}

// ParseFlaky decodes and checks a flaky config.
func ParseFlaky(raw json.RawMessage) (FlakyConfig, error) {
	var c FlakyConfig
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("flaky config: %w", err)
	}
	if c.FailTimes < 0 || c.FailTimes > 1000 || c.RunMS < 0 || c.RunMS > 600_000 {
		return c, fmt.Errorf("flaky config: fail_times must be 0..1000 and run_ms 0..600000")
	}
	return c, nil
}

// ParseBeat decodes and checks a beat or stubborn config.
func ParseBeat(raw json.RawMessage) (BeatConfig, error) {
	c := BeatConfig{Workers: 1, IntervalMS: 50, Burst: 1}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("beat config: %w", err)
	}
	if c.Workers < 0 || c.Workers > 100 || c.IntervalMS < 1 || c.IntervalMS > 60_000 ||
		c.Burst < 1 || c.Burst > 1000 || c.Beats < 0 {
		return c, fmt.Errorf("beat config: workers must be 0..100, interval_ms 1..60000, burst 1..1000, beats ≥ 0")
	}
	return c, nil
}

// FlakyType returns the flaky job type.
func FlakyType() framework.JobType {
	return framework.JobType{
		Name:     Flaky,
		Validate: func(raw json.RawMessage) error { _, err := ParseFlaky(raw); return err },
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			cfg, err := ParseFlaky(h.Config())
			if err != nil {
				return nil, framework.Permanent(err)
			}
			return &flaky{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg}, nil
		},
	}
}

// BeatType returns the beat job type.
func BeatType() framework.JobType { return beatType(Beat, false) }

// StubbornType returns the stubborn job type: a beat job that ignores cancel.
func StubbornType() framework.JobType { return beatType(Stubborn, true) }

func beatType(name string, stubborn bool) framework.JobType {
	jt := framework.JobType{
		Name:     name,
		Validate: func(raw json.RawMessage) error { _, err := ParseBeat(raw); return err },
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			cfg, err := ParseBeat(h.Config())
			if err != nil {
				return nil, framework.Permanent(err)
			}
			return &beatMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg, stubborn: stubborn}, nil
		},
	}
	if !stubborn {
		// One registration of the worker type serves both job types.
		jt.Workers = map[string]func(framework.WorkerHandle) (framework.Worker, error){
			BeatWorker: func(h framework.WorkerHandle) (framework.Worker, error) {
				var cfg BeatConfig
				if err := json.Unmarshal(h.Config(), &cfg); err != nil {
					return nil, err
				}
				return &beatWorker{BaseWorker: framework.BaseWorker{H: h}, cfg: cfg}, nil
			},
		}
	}
	return jt
}

// AttemptsKey is the business key where a flaky job counts its attempts;
// AttemptKey(n) holds the start time (Unix ms) of attempt n.
const AttemptsKey = "attempts"

// AttemptKey is the business key of attempt n's start time.
func AttemptKey(n int) string { return "attempt." + strconv.Itoa(n) }

// FlakyDetail is a finished flaky job's detail.
type FlakyDetail struct {
	Attempts int `json:"attempts"`
}

type flaky struct {
	framework.BaseJobMaster
	cfg     FlakyConfig
	attempt int
	started time.Time
}

func (f *flaky) Init(ctx context.Context) error              { return f.start(ctx) }
func (f *flaky) OnMasterRecovered(ctx context.Context) error { return f.start(ctx) }

// start counts this attempt (a fenced write, so a stale master cannot) and
// fails it while attempts remain to fail.
func (f *flaky) start(ctx context.Context) error {
	n, err := readInt(ctx, f.H.KV(), AttemptsKey)
	if err != nil {
		return err
	}
	n++
	if _, err := f.H.KV().Put(ctx, AttemptsKey, []byte(strconv.Itoa(n))); err != nil {
		return err
	}
	now := time.Now()
	if _, err := f.H.KV().Put(ctx, AttemptKey(n), []byte(strconv.FormatInt(now.UnixMilli(), 10))); err != nil {
		return err
	}
	f.attempt, f.started = n, now
	if n <= f.cfg.FailTimes {
		err := fmt.Errorf("flaky: attempt %d of %d fails on purpose", n, f.cfg.FailTimes)
		if f.cfg.Permanent {
			return framework.Permanent(err)
		}
		return err
	}
	f.H.Logger().Info("flaky attempt runs", zap.Int("attempt", n))
	return nil
}

func (f *flaky) Tick(context.Context) error {
	if f.attempt > f.cfg.FailTimes && time.Since(f.started) >= time.Duration(f.cfg.RunMS)*time.Millisecond {
		f.H.Exit(framework.ExitFinished, nil, FlakyDetail{Attempts: f.attempt})
	}
	return nil
}

func (f *flaky) TickInterval() time.Duration { return 20 * time.Millisecond }

// BeatKey is the business key where a beat master ("master") or worker
// counts its beats.
func BeatKey(who string) string { return "beat." + who }

// BeatDetail is a finished beat job's detail.
type BeatDetail struct {
	Beats int `json:"beats"`
}

type beatMaster struct {
	framework.BaseJobMaster
	cfg      BeatConfig
	stubborn bool
	n        int
}

func (b *beatMaster) TickInterval() time.Duration {
	return time.Duration(b.cfg.IntervalMS) * time.Millisecond
}

func (b *beatMaster) Init(ctx context.Context) error { return b.reconcile(ctx) }

// reconcile keeps one live worker per index: a lost one is re-created and
// resumes from its last beat.
func (b *beatMaster) reconcile(ctx context.Context) error {
	if !b.H.IsMasterReady() {
		return nil
	}
	for i := range b.cfg.Workers {
		id := "beat" + strconv.Itoa(i)
		if w, ok := b.H.Worker(id); ok && w.Live() {
			continue
		}
		_, err := b.H.CreateWorker(ctx, BeatWorker, b.cfg, framework.WithWorkerID(id))
		if err != nil && !errors.Is(err, framework.ErrWorkerExists) {
			return err
		}
	}
	return nil
}

func (b *beatMaster) OnWorkerOffline(framework.WorkerInfo, string) error {
	return b.reconcile(context.Background())
}

// OnMasterRecovered resumes from the last beat; the workers re-attach.
func (b *beatMaster) OnMasterRecovered(ctx context.Context) error {
	n, err := readInt(ctx, b.H.KV(), BeatKey("master"))
	b.n = n
	return err
}

func (b *beatMaster) Tick(ctx context.Context) error {
	if err := b.reconcile(ctx); err != nil {
		return err
	}
	if b.n == 0 {
		n, err := readInt(ctx, b.H.KV(), BeatKey("master"))
		if err != nil {
			return err
		}
		b.n = n
	}
	for range b.cfg.Burst {
		if b.cfg.Beats > 0 && b.n >= b.cfg.Beats {
			b.H.Exit(framework.ExitFinished, nil, BeatDetail{Beats: b.n})
			return nil
		}
		if _, err := b.H.KV().Put(ctx, BeatKey("master"), []byte(strconv.Itoa(b.n+1))); err != nil {
			return err
		}
		b.n++
	}
	return nil
}

// OnCancel exits canceled, unless the job is stubborn: then it does
// nothing and the job manager has to stop this master by force.
func (b *beatMaster) OnCancel(ctx context.Context) error {
	if b.stubborn {
		b.H.Logger().Info("stubborn master ignores cancel")
		return nil
	}
	return b.BaseJobMaster.OnCancel(ctx)
}

type beatWorker struct {
	framework.BaseWorker
	cfg BeatConfig
	n   int
}

func (b *beatWorker) TickInterval() time.Duration {
	return time.Duration(max(b.cfg.IntervalMS, 1)) * time.Millisecond
}

// Init resumes from the last beat a previous incarnation wrote.
func (b *beatWorker) Init(ctx context.Context) error {
	n, err := readInt(ctx, b.H.KV(), BeatKey(b.H.WorkerID()))
	b.n = n
	return err
}

// Tick writes a burst of beats. A write that failed otherwise than fenced
// is sent once more in the same tick: a node frozen past the server's ping
// timeout loses the answer of the write it was waiting for with its
// connection, and only the next write, on the new connection, meets the
// fence (the frozen-node tests count on it).
func (b *beatWorker) Tick(ctx context.Context) error {
	retried := false
	for range max(b.cfg.Burst, 1) {
		_, err := b.H.KV().Put(ctx, BeatKey(b.H.WorkerID()), []byte(strconv.Itoa(b.n+1)))
		switch {
		case err == nil:
			b.n++
		case retried || errors.Is(err, framework.ErrFenced) || ctx.Err() != nil:
			return err
		default:
			retried = true
		}
	}
	return nil
}

func readInt(ctx context.Context, kv framework.KV, key string) (int, error) {
	v, _, err := kv.Get(ctx, key)
	if errors.Is(err, framework.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(v))
}
