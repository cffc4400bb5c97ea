// Command jobmanager runs one job manager replica (API, job store, and the
// leader-elected scheduler). Configuration is DROVER_* environment variables.
package main

import "github.com/drover-run/drover/internal/stock"

func main() { stock.Main("jobmanager") }
