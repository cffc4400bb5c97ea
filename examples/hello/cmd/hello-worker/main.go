// Command hello-worker is a worker node that runs the hello job type's
// greeters: the stock node with the example's registry, built from the
// public SDK only. Configuration is the stock DROVER_* variables.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/drover-run/drover/examples/hello"
	"github.com/drover-run/drover/pkg/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.RunWorkerNode(ctx, hello.Registry()); err != nil {
		fmt.Fprintln(os.Stderr, "hello-worker:", err)
		os.Exit(1)
	}
}
