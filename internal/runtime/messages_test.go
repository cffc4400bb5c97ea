package runtime_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// msgLog is what the message probe saw.
type msgLog struct {
	mu        sync.Mutex
	helloErr  error
	sendDone  bool
	accepted  int
	refused   int
	otherErrs []error
	received  []string
	offline   []string
}

func (l *msgLog) with(f func(l *msgLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

type msgMaster struct {
	framework.BaseJobMaster
	log *msgLog
}

// Init sends to a worker it has just created, then floods it while the
// worker is busy in a long callback.
func (m *msgMaster) Init(ctx context.Context) error {
	if _, err := m.H.CreateWorker(ctx, "msg-worker", nil, framework.WithWorkerID("m0")); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := m.H.SendMessage(sctx, "m0", "hello", nil)
	m.log.with(func(l *msgLog) { l.helloErr = err })
	if err != nil {
		return nil
	}
	if err := m.H.SendMessage(sctx, "m0", "slow", nil); err != nil {
		m.log.with(func(l *msgLog) { l.otherErrs = append(l.otherErrs, err) })
	}
	for range 400 {
		err := m.H.SendMessage(sctx, "m0", "n", nil)
		m.log.with(func(l *msgLog) {
			switch {
			case err == nil:
				l.accepted++
			case errors.Is(err, framework.ErrNotDelivered):
				l.refused++
			default:
				l.otherErrs = append(l.otherErrs, err)
			}
		})
	}
	m.log.with(func(l *msgLog) { l.sendDone = true })
	return nil
}

func (m *msgMaster) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	m.log.with(func(l *msgLog) { l.offline = append(l.offline, w.ID+":"+reason) })
	return nil
}

type msgWorker struct {
	framework.BaseWorker
	log *msgLog
}

func (w *msgWorker) OnMasterMessage(_ context.Context, topic string, _ []byte) error {
	w.log.with(func(l *msgLog) { l.received = append(l.received, topic) })
	if topic == "slow" {
		// Longer than the self-fence (2.5 s): acknowledgements must not
		// wait for it.
		time.Sleep(3500 * time.Millisecond)
	}
	return nil
}

// TestMessagesQueueBoundedWithoutStarvingAcks: a message sent right after
// CreateWorker reaches the worker (it is delivered once the worker
// listens); 400 messages sent while the worker sits 3.5 s in a callback
// are each either queued and delivered or refused with ErrNotDelivered
// (the queue holds 256), never lost silently; and the worker's
// acknowledgements keep flowing, so it does not fence itself.
func TestMessagesQueueBoundedWithoutStarvingAcks(t *testing.T) {
	log := &msgLog{}
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "msgprobe",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &msgMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, log: log}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"msg-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &msgWorker{BaseWorker: framework.BaseWorker{H: h}, log: log}, nil
			},
		},
	})
	sys := testsys.Start(t, reg)
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "msgs", Type: "msgprobe"}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 30*time.Second, "every accepted message handled", func() bool {
		var ok bool
		log.with(func(l *msgLog) { ok = l.sendDone && len(l.received) == 2+l.accepted })
		return ok
	})
	// Past the self-fence and worker timeouts: a starved worker would be gone.
	time.Sleep(sys.Timing.WorkerTimeout)
	log.with(func(l *msgLog) {
		if l.helloErr != nil || len(l.received) == 0 || l.received[0] != "hello" {
			t.Errorf("message right after CreateWorker: %v, received first %v", l.helloErr, l.received[:min(1, len(l.received))])
		}
		if len(l.otherErrs) > 0 {
			t.Errorf("unexpected send errors: %v", l.otherErrs)
		}
		if l.refused == 0 || l.accepted+l.refused != 400 || l.accepted < 200 {
			t.Errorf("accepted %d, refused %d of 400; want the queue's bound to refuse some and take the rest", l.accepted, l.refused)
		}
		if len(l.offline) > 0 {
			t.Errorf("worker went offline while busy: %v", l.offline)
		}
	})
	ws, err := sys.Client.Workers(context.Background(), "msgs")
	if err != nil || len(ws) != 1 || ws[0].Epoch != 1 || ws[0].State != "online" {
		t.Fatalf("workers %+v (%v): want m0 still online at incarnation 1", ws, err)
	}
}
