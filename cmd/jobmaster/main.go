// Command jobmaster runs one job-master node hosting the built-in job
// types' masters. Configuration is DROVER_* environment variables.
package main

import "github.com/drover-run/drover/internal/stock"

func main() { stock.Main("jobmaster") }
