package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/floorhub/floorhub/auth"
)

// runPasswd implements `agent passwd`: it reads a password and prints its
// hash (PBKDF2-SHA256, auth.HashPassword), for a user's password_hash in the config. From a terminal it
// asks twice without echo; otherwise it reads the first line of stdin
// (`echo -n secret | agent passwd` also works: no newline needed).
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: agent passwd < password-file\n\nReads a password (from a terminal: asked twice, not echoed; else the first line of stdin)\nand prints its hash for a user's password_hash in the config.\n")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	var pw []byte
	var err error
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		pw, err = askTwice(f, stderr)
	} else {
		pw, err = readLine(stdin)
	}
	if err != nil {
		fmt.Fprintln(stderr, "agent passwd:", err)
		return exitFail
	}
	hash, err := auth.HashPasswordRounds(pw, passwdRounds)
	if err != nil {
		fmt.Fprintln(stderr, "agent passwd:", err)
		return exitFail
	}
	fmt.Fprintln(stdout, hash)
	return exitOK
}

// passwdRounds is the PBKDF2 iteration count of agent passwd's hashes;
// in-process tests lower it (the race detector makes the real one slow).
var passwdRounds = auth.PasswordRounds

// readLine returns the first line of r without its line ending.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return nil, errors.New("no password on stdin")
	}
	return line, nil
}

// askTwice prompts on stderr and reads the password twice from the
// terminal f with its echo off.
func askTwice(f *os.File, prompt io.Writer) ([]byte, error) {
	var got [2][]byte
	for i, p := range []string{"Password: ", "Again: "} {
		fmt.Fprint(prompt, p)
		b, err := readNoEcho(f)
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, err
		}
		got[i] = b
	}
	if !bytes.Equal(got[0], got[1]) {
		return nil, errors.New("the passwords differ")
	}
	if len(got[0]) == 0 {
		return nil, errors.New("empty password")
	}
	return got[0], nil
}
