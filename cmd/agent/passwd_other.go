//go:build !linux

package main

import "os"

// isTerminal is false where the agent does not run: stdin is read as a
// line.
func isTerminal(*os.File) bool { return false }

func readNoEcho(f *os.File) ([]byte, error) { return readLine(f) }
