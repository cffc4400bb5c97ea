// Command nats-server is the NATS server, built from the same
// nats-server module Drover's tests embed, so a deployment can run the
// exact server version the project is tested against without a registry.
// It takes the official binary's flags and configuration file unchanged
// (-js, -sd, -c, --cluster, --routes, ...). One addition: the
// subcommand "healthcheck [URL]", for container health checks in images
// that have no shell or curl.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

const exe = "nats-server"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}

	fs := flag.NewFlagSet(exe, flag.ExitOnError)
	fs.Usage = usage
	opts, err := server.ConfigureOptions(fs, os.Args[1:],
		server.PrintServerAndExit, fs.Usage, server.PrintTLSHelpAndDie)
	if err != nil {
		server.PrintAndDie(fmt.Sprintf("%s: %s", exe, err))
	}
	if opts.CheckConfig {
		fmt.Fprintf(os.Stderr, "%s: configuration file %s is valid (%s)\n", exe, opts.ConfigFile, opts.ConfigDigest())
		os.Exit(0)
	}
	// Passwords given on the command line must not show in ps or /proc.
	server.RedactArgs(os.Args)

	s, err := server.NewServer(opts)
	if err != nil {
		server.PrintAndDie(fmt.Sprintf("%s: %s", exe, err))
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		server.PrintAndDie(err.Error())
	}
	s.WaitForShutdown()
}

func usage() {
	fmt.Printf(`Usage: %s [options]
       %s healthcheck [URL]   exit 0 iff URL (default %s) answers 200

The options are those of the official nats-server, for example:
    -c, --config <file>              Configuration file
    -a, --addr <host>                Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Port for clients (default: 4222)
    -m, --http_port <port>           Port for HTTP monitoring
    -n, --name <server_name>         Server name (required for a JetStream cluster)
    -js, --jetstream                 Enable JetStream
    -sd, --store_dir <dir>           JetStream storage directory
        --cluster_name <name>        Cluster name
        --cluster <url>              Cluster URL for solicited routes
        --routes <url,url,...>       Routes to solicit and connect
    -D, -V, -DV                      Debug, trace, both
    -v, --version                    Show version
        --help_tls                   TLS help

See https://docs.nats.io/running-a-nats-service/introduction/flags for all of them.
`, exe, exe, defaultHealthURL)
	os.Exit(0)
}
