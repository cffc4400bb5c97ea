package main

import (
	"os/exec"
	"testing"
	"time"
)

// TestChildStopsTwice: a child stopped (or killed) again after it ended,
// as the scale phase's deferred cleanup does when a replacement set of
// nodes fails to start, returns at once instead of waiting forever.
func TestChildStopsTwice(t *testing.T) {
	c, err := newChild("sleeper", exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		c.stop()
		c.stop()
		c.kill()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(15 * time.Second): // stop's own bound is 20 s
		t.Fatal("a second stop of an ended child hung")
	}
}
