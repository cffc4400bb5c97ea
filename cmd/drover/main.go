// Command drover is Drover's command-line client and local launcher: it
// submits, inspects, waits for and cancels jobs over the public v1 API, lists
// nodes and workers, and (`drover dev`) runs a whole local system — an
// embedded NATS server, a job manager, job-master and worker nodes — as one
// command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newCLI(os.Stdin, os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
