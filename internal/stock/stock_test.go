package stock_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/stock"
)

// TestStopDuringStartUpIsClean: a service asked to stop while it still
// waits for its state store (no NATS server answers) stops promptly and
// without an error, so its binary exits 0 on SIGTERM at any moment.
func TestStopDuringStartUpIsClean(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nobody listens there now
	for _, name := range stock.Names() {
		t.Run(name, func(t *testing.T) {
			t.Setenv("DROVER_NATS_URL", "nats://"+addr)
			t.Setenv("DROVER_HTTP_ADDR", "127.0.0.1:0")
			t.Setenv("DROVER_LOG_LEVEL", "error")
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- stock.Serve(ctx, name) }()
			time.Sleep(300 * time.Millisecond) // well into its start-up retries
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("stopped during start-up: %v, want a clean stop", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("did not stop within 10 s of being asked")
			}
		})
	}
}
