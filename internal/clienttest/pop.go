package clienttest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// POP3Message is one message a POP3 client retrieved.
type POP3Message struct {
	Num  int
	UIDL string
	Size int    // from LIST
	Raw  []byte // RETR, dot-unstuffed, CRLF line ends
	Top0 []byte // TOP n 0: the header and the blank line
}

// POP3Run is what Python's poplib saw.
type POP3Run struct {
	Capa     []string // CAPA keywords, sorted
	Stat     [2]int   // message count and size
	Messages []POP3Message
	Quit     string // the QUIT reply
}

// RunPoplib logs in to t's POP3 endpoint with Python's poplib (CAPA,
// USER/PASS, STAT, LIST, UIDL, RETR and TOP of every message), deletes the
// messages numbered in dele, and QUITs.
func RunPoplib(ctx context.Context, t Target, dele ...int) (*POP3Run, error) {
	if t.POP3 == "" {
		return nil, errors.New("clienttest: target has no POP3 address")
	}
	out, err := runPython(ctx, "poplib_session.py", t, t.POP3, map[string]any{"dele": dele})
	if err != nil {
		return nil, err
	}
	var raw struct {
		Capa     []string
		Stat     []int
		Messages []struct {
			Num, Size int
			UIDL      string
			Raw, Top0 []byte
		}
		Quit string
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("clienttest: poplib output: %w", err)
	}
	run := &POP3Run{Capa: raw.Capa, Quit: raw.Quit}
	if len(raw.Stat) == 2 {
		run.Stat = [2]int{raw.Stat[0], raw.Stat[1]}
	}
	for _, m := range raw.Messages {
		run.Messages = append(run.Messages, POP3Message{Num: m.Num, UIDL: m.UIDL, Size: m.Size, Raw: m.Raw, Top0: m.Top0})
	}
	return run, nil
}

// FetchmailRun is what Debian's fetchmail delivered.
type FetchmailRun struct {
	Messages [][]byte // in delivery order, as fetchmail handed them to its MDA (LF line ends)
	UIDLs    []string // the UIDLs fetchmail recorded in its .fetchids, sorted
	ExitCode int      // 0: mail retrieved, 1: no mail (fetchmail(1))
	Output   string
}

// Fetchmail is a fetchmail set up for one target, keeping its state (the
// UIDLs it has seen) between runs in Dir.
type Fetchmail struct {
	Dir    string
	target Target
}

// NewFetchmail prepares fetchmail for t in dir: "keep" (nothing deleted on
// the server), "uidl" (what was seen is recorded and not fetched again),
// invisible and without address rewriting, delivering each message
// through a shell MDA into dir/mail/ as a numbered file.
func NewFetchmail(dir string, t Target) (*Fetchmail, error) {
	if t.POP3 == "" {
		return nil, errors.New("clienttest: target has no POP3 address")
	}
	if _, err := exec.LookPath("fetchmail"); err != nil {
		return nil, fmt.Errorf("clienttest: fetchmail not found (apt-get install fetchmail): %w", err)
	}
	if strings.ContainsAny(dir, " \t\"'\\$`;&|<>()") {
		return nil, fmt.Errorf("clienttest: fetchmail directory %q holds characters the MDA command line cannot take", dir)
	}
	for _, d := range []string{dir, filepath.Join(dir, "mail"), filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	host, port, err := net.SplitHostPort(t.POP3)
	if err != nil {
		return nil, err
	}
	ssl := "sslproto '' no sslcertck"
	check := "sslproto tls1.2+ sslcertck sslcertfile " + fetchmailString(t.CAFile) + " sslcommonname " + fetchmailString(certName(t, host))
	switch t.TLS {
	case TLSStartTLS:
		ssl = check
	case TLSImplicit:
		ssl = "ssl " + check
	}
	mail := filepath.Join(dir, "mail")
	mda := fmt.Sprintf("n=$(ls %s | wc -l); cat > %s/$(printf %%06d $n)", mail, mail)
	rc := fmt.Sprintf(`set no syslog
set invisible

poll %s service %s protocol POP3 auth password uidl
  user %s password %s
  keep
  no rewrite
  stripcr
  %s
  mda %s
`, host, port, fetchmailString(t.User), fetchmailString(t.Pass), ssl, fetchmailString(mda))
	if err := os.WriteFile(filepath.Join(dir, "fetchmailrc"), []byte(rc), 0o600); err != nil {
		return nil, err
	}
	return &Fetchmail{Dir: dir, target: t}, nil
}

// Run runs fetchmail once and returns everything delivered so far (this
// run and earlier ones) and the UIDLs it recorded.
func (f *Fetchmail) Run(ctx context.Context) (*FetchmailRun, error) {
	home := filepath.Join(f.Dir, "home")
	cmd := exec.CommandContext(ctx, "fetchmail", "-f", filepath.Join(f.Dir, "fetchmailrc"),
		"--nosyslog", "-s", "--pidfile", filepath.Join(home, "fetchmail.pid"), "-k", "--uidl")
	cmd.Env = append(os.Environ(), "FETCHMAILHOME="+home)
	out, err := cmd.CombinedOutput()
	run := &FetchmailRun{Output: string(out)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		run.ExitCode = ee.ExitCode()
	case err != nil:
		return nil, fmt.Errorf("clienttest: fetchmail: %w", err)
	}
	if run.ExitCode > 1 {
		return run, fmt.Errorf("clienttest: fetchmail exit status %d: %s", run.ExitCode, out)
	}
	mail := filepath.Join(f.Dir, "mail")
	ents, err := os.ReadDir(mail)
	if err != nil {
		return nil, err
	}
	for _, e := range ents { // numbered names: ReadDir's order is delivery order
		b, err := os.ReadFile(filepath.Join(mail, e.Name()))
		if err != nil {
			return nil, err
		}
		run.Messages = append(run.Messages, b)
	}
	if fh, err := os.Open(filepath.Join(home, ".fetchids")); err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// "user@host uidl" (fetchmail 6.4 adds a status field after
			// the UIDL on some lines).
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && strings.Contains(fields[0], "@") {
				run.UIDLs = append(run.UIDLs, fields[1])
			}
		}
		fh.Close()
	}
	sort.Strings(run.UIDLs)
	return run, nil
}

// fetchmailString quotes s as a fetchmailrc string.
func fetchmailString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// LF returns raw with CRLF line ends turned into LF, as fetchmail (stripcr)
// and many MDAs store a message.
func LF(raw []byte) []byte {
	return []byte(strings.ReplaceAll(string(raw), "\r\n", "\n"))
}
