// Command worker runs one worker node hosting the built-in job types'
// workers. Configuration is DROVER_* environment variables.
package main

import "github.com/drover-run/drover/internal/stock"

func main() { stock.Main("worker") }
