package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// fetchmailPeer runs Debian's fetchmail, delivering through maildeliver (the
// bench's own Maildir delivery agent, package ./maildeliver) as its MDA.
type fetchmailPeer struct {
	bin     string
	version string // "fetchmail 6.4.37"
	mda     string // the maildeliver binary
}

// newFetchmail finds fetchmail and builds maildeliver into dir.
func newFetchmail(ctx context.Context, dir string) (*fetchmailPeer, error) {
	bin, err := exec.LookPath("fetchmail")
	if err != nil {
		return nil, fmt.Errorf("fetchmail not found (apt-get install fetchmail): %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("fetchmail --version: %w", err)
	}
	p := &fetchmailPeer{bin: bin, version: "fetchmail"}
	line, _, _ := strings.Cut(string(out), "\n")
	var release string
	if _, err := fmt.Sscanf(line, "This is fetchmail release %s", &release); err == nil {
		release, _, _ = strings.Cut(release, "+")
		p.version = "fetchmail " + strings.TrimSuffix(release, ".")
	}
	p.mda = filepath.Join(dir, "maildeliver")
	if _, err := goBuild(ctx, p.mda, "./internal/bench/maildeliver"); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *fetchmailPeer) Name() string    { return "fetchmail" }
func (p *fetchmailPeer) Version() string { return p.version }
func (p *fetchmailPeer) Notes() string {
	return "keep, uidl (state in .fetchids), one connection, invisible, no rewrite; delivery by an MDA run once per message " +
		"(bench maildeliver via /bin/sh: write to tmp/, fsync, rename into new/)"
}

func (p *fetchmailPeer) NewReplica(dir string, up upstream) (replica, error) {
	root := filepath.Join(dir, "maildir")
	for _, d := range []string{root, filepath.Join(root, "tmp"), filepath.Join(root, "new"), filepath.Join(root, "cur")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	home := filepath.Join(dir, "home") // FETCHMAILHOME: .fetchids, the lock
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	rc := filepath.Join(dir, "fetchmailrc")
	if err := os.WriteFile(rc, []byte(fetchmailRC(up, p.mda, root)), 0o600); err != nil {
		return nil, err
	}
	argv := []string{"env", "FETCHMAILHOME=" + home, p.bin, "-f", rc,
		"--nosyslog", "-s", "--pidfile", filepath.Join(home, "fetchmail.pid"), "-k", "--uidl"}
	return &fetchmailReplica{argv: argv, dir: dir, root: root}, nil
}

// fetchmailRC is the run control file: one POP3 server, plaintext on
// loopback, messages kept on the server and recognized by their UIDL, and
// delivered as the server sent them with LF line ends, as postfach stores
// them: "stripcr" (fetchmail's default with an MDA), "invisible" (no
// Received header of its own) and "no rewrite" (no change to addresses in
// the header), so that the bench can compare the bytes.
func fetchmailRC(up upstream, mda, maildir string) string {
	return fmt.Sprintf(`set no syslog
set invisible

poll %s service %d protocol POP3 auth password uidl
  user %s password %s
  keep
  no rewrite
  stripcr
  sslproto '' no sslcertck
  mda %s
`, up.Host, up.Port, fetchmailString(up.User), fetchmailString(up.Password),
		fetchmailString(shellQuote([]string{mda, maildir})))
}

// fetchmailString quotes s as a fetchmailrc string.
func fetchmailString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

type fetchmailReplica struct {
	argv      []string
	dir, root string
}

// fetchmail's exit status (fetchmail(1), EXIT CODES): 0 when mail was
// retrieved, 1 when there was none.
const fetchmailNoMail = 1

// Initial must retrieve mail (exit 0).
func (r *fetchmailReplica) Initial(ctx context.Context) (sample, error) {
	s, _, err := runProcess(ctx, r.dir, r.argv...)
	return s, err
}

// Resync must find no new mail (exit 1); an exit 0 means it fetched
// messages again.
func (r *fetchmailReplica) Resync(ctx context.Context) (sample, error) {
	s, _, err := runProcess(ctx, r.dir, r.argv...)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == fetchmailNoMail:
		return s, nil
	case err == nil:
		return s, fmt.Errorf("%s: exit status 0 (mail retrieved), want %d (no new mail)", shellQuote(r.argv), fetchmailNoMail)
	}
	return s, err
}

func (r *fetchmailReplica) Maildir() string { return r.root }
func (r *fetchmailReplica) Command() string { return shellQuote(r.argv) }

// Folder: maildeliver delivers into the Maildir it is given, the root,
// which holds INBOX (the only POP3 folder); there is no other.
func (r *fetchmailReplica) Folder(rel string) (string, error) {
	if rel == "." {
		return "INBOX", nil
	}
	return "", errors.New("fetchmail's MDA delivers into the Maildir root (INBOX) only")
}
