package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal tells whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readNoEcho reads a line from the terminal f with its echo off (x/sys,
// already in the binary, rather than x/term for these few lines).
func readNoEcho(f *os.File) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	return readLineRaw(f)
}

// readLineRaw reads up to a newline one byte at a time, so that nothing
// after the line is consumed from the terminal.
func readLineRaw(f *os.File) ([]byte, error) {
	var out []byte
	var b [1]byte
	for len(out) < 4096 {
		n, err := f.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			out = append(out, b[0])
		}
		if err != nil {
			if len(out) > 0 {
				break
			}
			return nil, err
		}
	}
	for len(out) > 0 && out[len(out)-1] == '\r' {
		out = out[:len(out)-1]
	}
	return out, nil
}
