//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "io"

// termWidth returns 80: the platform has no cheap way to ask.
func termWidth(io.Writer) int { return 80 }
