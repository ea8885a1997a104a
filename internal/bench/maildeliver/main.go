// Command maildeliver is the bench's mail delivery agent for fetchmail
// (fetchmail --mda): it reads one message from standard input and delivers
// it into the Maildir named by its argument, the way a Maildir delivery
// agent does: write the message into tmp/ under a unique name, fsync it,
// close it, then rename it into new/.
//
// Usage:
//
//	maildeliver MAILDIR
//
// The Maildir (with tmp/ and new/) must exist. The exit status is 0 once the
// message is in new/, 75 (EX_TEMPFAIL) on any error, so that fetchmail keeps
// the message on the server and does not record it as fetched.
//
// It is deliberately small (no fmt, no flag) because fetchmail runs it once
// per message: its start-up time is part of fetchmail's cost.
package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const exTempFail = 75

func main() {
	if len(os.Args) != 2 {
		os.Stderr.WriteString("usage: maildeliver MAILDIR\n")
		os.Exit(exTempFail)
	}
	if err := deliver(os.Args[1], os.Stdin); err != nil {
		os.Stderr.WriteString("maildeliver: " + err.Error() + "\n")
		os.Exit(exTempFail)
	}
}

// deliver writes r into dir/tmp, makes it durable and renames it into
// dir/new.
func deliver(dir string, r io.Reader) error {
	f, name, err := create(dir)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "new", name))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// create makes a new file in dir/tmp with a unique Maildir name:
// <seconds>.M<microseconds>P<pid>Q<attempt>.<host>.
func create(dir string) (*os.File, string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// '/' and ':' cannot appear in a Maildir name.
	safe := []byte(host)
	for i, c := range safe {
		if c == '/' || c == ':' {
			safe[i] = '_'
		}
	}
	pid := strconv.Itoa(os.Getpid())
	for q := 0; ; q++ {
		now := time.Now()
		name := strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) +
			"P" + pid + "Q" + strconv.Itoa(q) + "." + string(safe)
		f, err := os.OpenFile(filepath.Join(dir, "tmp", name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) && q < 100 {
			continue
		}
		return f, name, err
	}
}
