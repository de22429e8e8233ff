package testkit

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EmulatorEnv names the environment variable that says the test binary runs
// under a user-mode emulator, and which one: the command line that go test's
// -exec flag was given, such as "qemu-arm -cpu arm1176". scripts/test.sh
// sets it together with -exec when it runs the ARM tests on another
// architecture. Unset or empty means the tests run natively.
//
// It cannot be detected from inside: qemu-user reports the guest's
// architecture to uname and /proc/self/exe, and the host kernel, without
// binfmt_misc, refuses to execute the guest's binaries ("exec format error").
const EmulatorEnv = "FLOORHUB_TEST_EMULATOR"

// Command is exec.Command for a binary built for the architecture the tests
// run on (the test binary itself, or one a test built with go build): under
// an emulator (see [EmulatorEnv]) the command runs the binary through it.
func Command(name string, args ...string) *exec.Cmd {
	argv := emulated(name, args)
	return exec.Command(argv[0], argv[1:]...)
}

// CommandContext is [Command] with exec.CommandContext's ctx: the process
// (the emulator, with the binary in it) is killed when ctx is done.
func CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := emulated(name, args)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// emulated is the command line that runs name with args, through the
// emulator if there is one.
func emulated(name string, args []string) []string {
	argv := append(strings.Fields(os.Getenv(EmulatorEnv)), name)
	return append(argv, args...)
}

// Reexec returns a command that runs the current test binary again with
// args, usually "-test.run=^TestHelperProcess$" so that a test can kill or
// restart a helper process. Like [Command], it goes through the emulator
// when there is one, so the child runs the same code as the parent. The
// child inherits the environment; add to cmd.Env as needed.
func Reexec(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testkit.Reexec: the test binary's path: %v", err)
	}
	return Command(exe, args...)
}
