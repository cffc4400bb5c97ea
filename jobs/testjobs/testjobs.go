// Package testjobs holds job types that exist to exercise Drover's failure
// handling, registered in the stock binaries next to counter so the
// end-to-end tests run them as real processes:
//
//   - flaky: its master fails (retryable, or permanently) a given number of
//     attempts, counted in business KV, then runs for a while and finishes.
//     It drives the restart policy tests.
//   - stubborn: its master starts workers that beat forever and ignores
//     OnCancel, so only the job manager's forced cancel can end it.
//
// They are harmless in a deployment but of no use there.
package testjobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Job type names.
const (
	Flaky    = "flaky"
	Stubborn = "stubborn"
	// StubbornWorker is the worker type of stubborn jobs.
	StubbornWorker = "stubborn-beat"
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

// StubbornConfig configures a stubborn job.
type StubbornConfig struct {
	Workers int `json:"workers"`
}

func decodeStrict(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// ParseFlaky decodes and checks a flaky config.
func ParseFlaky(raw json.RawMessage) (FlakyConfig, error) {
	var c FlakyConfig
	if err := decodeStrict(raw, &c); err != nil {
		return c, fmt.Errorf("flaky config: %w", err)
	}
	if c.FailTimes < 0 || c.FailTimes > 1000 || c.RunMS < 0 || c.RunMS > 600_000 {
		return c, fmt.Errorf("flaky config: fail_times must be 0..1000 and run_ms 0..600000")
	}
	return c, nil
}

// ParseStubborn decodes and checks a stubborn config.
func ParseStubborn(raw json.RawMessage) (StubbornConfig, error) {
	c := StubbornConfig{Workers: 1}
	if err := decodeStrict(raw, &c); err != nil {
		return c, fmt.Errorf("stubborn config: %w", err)
	}
	if c.Workers < 0 || c.Workers > 100 {
		return c, fmt.Errorf("stubborn config: workers must be 0..100")
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

// StubbornType returns the stubborn job type.
func StubbornType() framework.JobType {
	return framework.JobType{
		Name:     Stubborn,
		Validate: func(raw json.RawMessage) error { _, err := ParseStubborn(raw); return err },
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			cfg, err := ParseStubborn(h.Config())
			if err != nil {
				return nil, framework.Permanent(err)
			}
			return &stubborn{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			StubbornWorker: func(h framework.WorkerHandle) (framework.Worker, error) {
				return &beat{BaseWorker: framework.BaseWorker{H: h}}, nil
			},
		},
	}
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

type stubborn struct {
	framework.BaseJobMaster
	cfg StubbornConfig
}

func (s *stubborn) Init(ctx context.Context) error {
	for i := range s.cfg.Workers {
		if _, err := s.H.CreateWorker(ctx, StubbornWorker, nil, framework.WithWorkerID("beat"+strconv.Itoa(i))); err != nil {
			return err
		}
	}
	return nil
}

// OnCancel does nothing: the job manager has to stop this master by force.
func (s *stubborn) OnCancel(context.Context) error {
	s.H.Logger().Info("stubborn master ignores cancel")
	return nil
}

// BeatKey is the business key a stubborn worker increments every tick.
func BeatKey(worker string) string { return "beat." + worker }

type beat struct {
	framework.BaseWorker
	n int
}

func (b *beat) TickInterval() time.Duration { return 50 * time.Millisecond }

func (b *beat) Tick(ctx context.Context) error {
	b.n++
	_, err := b.H.KV().Put(ctx, BeatKey(b.H.WorkerID()), []byte(strconv.Itoa(b.n)))
	return err
}

func readInt(ctx context.Context, kv framework.KV, key string) (int, error) {
	v, _, err := kv.Get(ctx, key)
	if errors.Is(err, kvstate.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(v))
}
