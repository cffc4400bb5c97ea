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
