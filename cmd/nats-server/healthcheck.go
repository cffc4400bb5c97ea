package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// defaultHealthURL is the server's own monitoring endpoint; /healthz
// answers 200 only once JetStream is up and, in a cluster, current with
// its meta group, so a node that is still catching up is not yet healthy.
const defaultHealthURL = "http://127.0.0.1:8222/healthz"

// healthcheck probes url and returns the process exit code: 0 on 200,
// 1 otherwise, as Docker's HEALTHCHECK expects.
func healthcheck(args []string) int {
	url := defaultHealthURL
	if len(args) > 0 {
		url = args[0]
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "healthcheck: %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}
