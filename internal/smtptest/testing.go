package smtptest

import (
	"errors"
	"os"
	"testing"
)

// NeedRelay skips the test when a private Postfix cannot run here
// (not installed, or not root), or fails it when the environment has
// CI=true (a missing peer is a failure there).
func NeedRelay(t testing.TB) {
	t.Helper()
	err := ErrNotRoot
	if os.Geteuid() == 0 {
		_, _, err = FindPostfix()
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") != "true" && (errors.Is(err, ErrMissing) || errors.Is(err, ErrNotRoot)) {
		t.Skipf("skipping: needs a private Postfix (apt-get install postfix; run as root): %v", err)
	}
	t.Fatal(err)
}

// TempDir makes a fresh directory for a relay: in /dev/shm when that is
// there (a tmpfs: Postfix syncs every queue file, and a disposable test
// peer need not pay for it; twice as fast), else in os.TempDir(). Not
// below t.TempDir(): Postfix's UNIX socket paths must stay short, and the
// postfix user must be able to pass through every parent. The caller
// removes it.
func TempDir() (string, error) {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "smtptest"); err == nil {
			return dir, nil
		}
	}
	return os.MkdirTemp("", "smtptest")
}

// StartRelay starts a real SMTP relay (Postfix, see the package doc) on a
// free 127.0.0.1 port, STARTTLS (or implicit TLS) with a test CA, AUTH
// required as Username/Password, accepting mail for any recipient and
// keeping every delivered message with its envelope for Delivered. It is
// stopped by t.Cleanup, which logs Postfix's log if the test failed.
// Without Postfix (or root) the test is skipped, or fails with CI=true.
func StartRelay(t testing.TB, o RelayOptions) *Relay {
	t.Helper()
	NeedRelay(t)
	dir, err := TempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r, err := NewRelay(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("Postfix log (%s):\n%s", r.Dir, r.Log())
		}
	})
	return r
}
