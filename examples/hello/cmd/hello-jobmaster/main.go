// Command hello-jobmaster is a job-master node that runs the hello job
// type's masters: the stock node with the example's registry, built from
// the public SDK only. Configuration is the stock DROVER_* variables.
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
	if err := node.RunJobMasterNode(ctx, hello.Registry()); err != nil {
		fmt.Fprintln(os.Stderr, "hello-jobmaster:", err)
		os.Exit(1)
	}
}
