package main

import (
	"runtime"
	"testing"
	"time"
)

// TestBusyShareSeesALoadedMachine: with every CPU spinning the busy share
// is high, and waitQuiet would not call the machine quiet.
func TestBusyShareSeesALoadedMachine(t *testing.T) {
	if b, _ := cpuTimes(); b == 0 {
		t.Skip("no /proc/stat")
	}
	stop := make(chan struct{})
	for range runtime.NumCPU() {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	busy := busyShare(300 * time.Millisecond)
	close(stop)
	if busy < quietBusy {
		t.Fatalf("every CPU spinning: %.0f %% busy, below the quiet bound %.0f %%", 100*busy, 100*quietBusy)
	}
	if busy > 1 {
		t.Fatalf("busy share %.2f above 1", busy)
	}
}

// TestCPULine: the busy, total and stolen time of /proc/stat's first line,
// guest time (already in user time) left out.
func TestCPULine(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, steal := cpuLine("cpu  100 5 50 800 20 3 2 70 40 1\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if busy != 100+5+50+3+2+70 || total != 100+5+50+800+20+3+2+70 || steal != 70 {
		t.Fatalf("busy %d total %d steal %d", busy, total, steal)
	}
	if b, tt, s := cpuLine("intr 1 2 3"); b != 0 || tt != 0 || s != 0 {
		t.Fatalf("a line that is not the cpu line: %d %d %d", b, tt, s)
	}
}
