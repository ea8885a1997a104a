package clienttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/postfach/postfach/internal/testenv"
)

// Mbsync is Debian's mbsync (isync) set up to mirror every folder of a
// target into a fresh Maildir, both ways: Sync All (new messages and
// flag changes in both directions), Create Near (folders made locally, not
// on the server), Expunge None and Remove None (nothing deleted on either
// side). State lives in the Maildir (SyncState *). mbsync does not sync
// keywords, only the flags \Seen \Flagged \Answered \Deleted \Draft.
type Mbsync struct {
	Dir     string // config and Maildir
	Maildir string // Dir/maildir: INBOX is Maildir/INBOX, folder A/B is Maildir/A/B
	rc      string
}

// NewMbsync writes the configuration for t into dir. With TLS, mbsync
// connects to t.ServerName, or to "localhost" for a loopback address
// (isync 1.4 does not match a certificate's IP addresses).
func NewMbsync(ctx context.Context, dir string, t Target) (*Mbsync, error) {
	if t.IMAP == "" {
		return nil, errors.New("clienttest: target has no IMAP address")
	}
	out, err := exec.CommandContext(ctx, "mbsync", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("clienttest: mbsync (apt-get install isync): %w", err)
	}
	tlsKey := "SSLType" // isync 1.5 renamed it TLSType and still takes SSLType
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "isync %d.%d", &major, &minor); err == nil && (major > 1 || major == 1 && minor >= 5) {
		tlsKey = "TLSType"
	}
	m := &Mbsync{Dir: dir, Maildir: filepath.Join(dir, "maildir"), rc: filepath.Join(dir, "mbsyncrc")}
	if err := os.MkdirAll(m.Maildir, 0o700); err != nil { // mbsync does not create Path
		return nil, err
	}
	host, port, err := net.SplitHostPort(t.IMAP)
	if err != nil {
		return nil, err
	}
	if t.TLS != TLSNone {
		host = certName(t, host)
	}
	tlsLines := tlsKey + " None\nAuthMechs LOGIN PLAIN\n"
	switch t.TLS {
	case TLSStartTLS:
		tlsLines = tlsKey + " STARTTLS\nCertificateFile " + rcString(t.CAFile) + "\n"
	case TLSImplicit:
		tlsLines = tlsKey + " IMAPS\nCertificateFile " + rcString(t.CAFile) + "\n"
	}
	rc := fmt.Sprintf(`IMAPAccount target
Host %s
Port %s
User %s
Pass %s
%s
IMAPStore remote
Account target

MaildirStore local
Path %s/
Inbox %s
SubFolders Verbatim

Channel target
Far :remote:
Near :local:
Patterns *
Create Near
Sync All
Expunge None
Remove None
SyncState *
`, host, port, rcString(t.User), rcString(t.Pass), tlsLines, rcString(m.Maildir), rcString(filepath.Join(m.Maildir, "INBOX")))
	if err := os.WriteFile(m.rc, []byte(rc), 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

// Run runs one sync (mbsync -a) and returns its output.
func (m *Mbsync) Run(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "mbsync", "-c", m.rc, "-a").CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("clienttest: mbsync: %v: %s", err, out)
	}
	return string(out), nil
}

// MaildirMessage is one message file in mbsync's Maildir.
type MaildirMessage struct {
	Path  string
	Flags string // the Maildir info letters after ":2,", sorted (D F R S T)
	Raw   []byte // the file without the X-TUID line mbsync adds
}

// Folders reads the Maildir: per folder name (as the server names it,
// decoded from modified UTF-7) its messages, in file name order.
func (m *Mbsync) Folders() (map[string][]MaildirMessage, error) {
	out := map[string][]MaildirMessage{}
	err := filepath.WalkDir(m.Maildir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if _, err := os.Stat(filepath.Join(p, "cur")); err != nil {
			return nil
		}
		rel, _ := filepath.Rel(m.Maildir, p)
		name, err := testenv.DecodeMUTF7(filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("clienttest: folder directory %q: %v", rel, err)
		}
		var msgs []MaildirMessage
		for _, sub := range []string{"new", "cur"} {
			ents, err := os.ReadDir(filepath.Join(p, sub))
			if err != nil {
				return err
			}
			for _, e := range ents {
				fp := filepath.Join(p, sub, e.Name())
				b, err := os.ReadFile(fp)
				if err != nil {
					return err
				}
				_, info, _ := strings.Cut(e.Name(), ":2,")
				fl := strings.Split(info, "")
				sort.Strings(fl)
				msgs = append(msgs, MaildirMessage{Path: fp, Flags: strings.Join(fl, ""), Raw: stripTUID(b)})
			}
		}
		sort.Slice(msgs, func(i, j int) bool { return filepath.Base(msgs[i].Path) < filepath.Base(msgs[j].Path) })
		out[name] = msgs
		return nil
	})
	return out, err
}

// SetFlags renames msg's file to carry flags (Maildir info letters), as a
// mail client working on the Maildir would.
func (m *Mbsync) SetFlags(msg MaildirMessage, flags string) error {
	dir := filepath.Dir(filepath.Dir(msg.Path))
	base, _, _ := strings.Cut(filepath.Base(msg.Path), ":2,")
	fl := strings.Split(flags, "")
	sort.Strings(fl)
	return os.Rename(msg.Path, filepath.Join(dir, "cur", base+":2,"+strings.Join(fl, "")))
}

// tuidRE is the header line isync adds to every message it stores.
var tuidRE = regexp.MustCompile(`(?m)^X-TUID: [^\r\n]*\r?\n`)

func stripTUID(b []byte) []byte {
	end := bytes.Index(b, []byte("\r\n\r\n")) + 2
	if end < 2 {
		if end = bytes.Index(b, []byte("\n\n")) + 1; end < 1 {
			return b
		}
	}
	head := tuidRE.ReplaceAll(b[:end], nil)
	return append(head, b[end:]...)
}

// certName is the name a client that checks a certificate's DNS names
// only (isync 1.4, fetchmail 6.4) must expect: t.ServerName, else
// "localhost" for a loopback address, else host.
func certName(t Target, host string) string {
	if t.ServerName != "" {
		return t.ServerName
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "localhost"
	}
	return host
}

// rcString quotes s for mbsyncrc when it needs quoting.
func rcString(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\#") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
