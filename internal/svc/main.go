package svc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/obs"
)

// Runner is a service's Run.
type Runner interface {
	Run(ctx context.Context) error
}

// Main is the whole life of a service binary: load its config (a clear
// start-up error for invalid values), build the logger, connect to NATS,
// build the service and run it until SIGINT or SIGTERM. The subcommand
// "healthcheck" probes the running service's /readyz instead (compose
// health checks; scratch images have no curl).
func Main(name string, cfg config.Validator, common func() *config.Common, defaultHTTP string,
	build func(nc *nats.Conn, log *zap.Logger) (Runner, error)) {
	// Signals first: a SIGTERM during start-up is a stop, not a crash.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := config.Load(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration:\n%v\n", name, err)
		os.Exit(2)
	}
	c := common()
	if c.HTTPAddr == "" {
		c.HTTPAddr = defaultHTTP
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(c.HTTPAddr))
	}
	log, err := obs.NewLogger(c.LogFormat, c.LogLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	if err := run(ctx, name, c, log, build); err != nil {
		log.Error("service stopped", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
}

// Serve is Main for a caller that owns the process: it loads the config,
// builds the logger, connects and runs the service until ctx ends, and
// returns what went wrong instead of exiting.
func Serve(ctx context.Context, name string, cfg config.Validator, common func() *config.Common, defaultHTTP string,
	build func(nc *nats.Conn, log *zap.Logger) (Runner, error)) error {
	if err := config.Load(cfg); err != nil {
		return fmt.Errorf("%s: invalid configuration: %w", name, err)
	}
	c := common()
	if c.HTTPAddr == "" {
		c.HTTPAddr = defaultHTTP
	}
	log, err := obs.NewLogger(c.LogFormat, c.LogLevel)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer func() { _ = log.Sync() }()
	return run(ctx, name, c, log, build)
}

// run connects to NATS, builds the service and runs it until ctx ends.
func run(ctx context.Context, name string, c *config.Common, log *zap.Logger,
	build func(nc *nats.Conn, log *zap.Logger) (Runner, error)) error {
	log = log.With(zap.String("service", name))
	nc, err := c.Connect(name, log)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	svc, err := build(nc, log)
	if err != nil {
		return fmt.Errorf("build service: %w", err)
	}
	err = svc.Run(ctx)
	_ = nc.Drain()
	if err != nil && ctx.Err() == nil {
		return err
	}
	// Asked to stop: whatever it was doing, even still starting (opening
	// its state store while NATS is not up), stopping is a clean exit.
	log.Info("stopped", zap.NamedError("while", err))
	return nil
}

func healthcheck(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: bad DROVER_HTTP_ADDR %q\n", addr)
		return 1
	}
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: /readyz answered", resp.Status)
		return 1
	}
	return 0
}
