package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/postfach/postfach/internal/testenv"
)

// mbsyncPeer runs Debian's mbsync (isync).
type mbsyncPeer struct {
	bin     string
	version string // "isync 1.4.4"
	// tlsKeyword is the name of the TLS setting: isync 1.4 has SSLType,
	// 1.5 renamed it TLSType (and still takes SSLType).
	tlsKeyword string
	// twoway syncs both ways (Sync All, Create Both, Expunge None) instead
	// of pulling (Sync Pull, Create Near).
	twoway bool
	// migrate copies one IMAP account into another (migrate.go).
	migrate bool
}

func newMbsync(ctx context.Context) (*mbsyncPeer, error) {
	bin, err := exec.LookPath("mbsync")
	if err != nil {
		return nil, fmt.Errorf("mbsync not found (apt-get install isync): %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("mbsync --version: %w", err)
	}
	p := &mbsyncPeer{bin: bin, version: strings.TrimSpace(string(out)), tlsKeyword: "SSLType"}
	var major, minor int
	if _, err := fmt.Sscanf(p.version, "isync %d.%d", &major, &minor); err == nil && (major > 1 || major == 1 && minor >= 5) {
		p.tlsKeyword = "TLSType"
	}
	return p, nil
}

func (p *mbsyncPeer) Name() string    { return "mbsync" }
func (p *mbsyncPeer) Version() string { return p.version }
func (p *mbsyncPeer) Notes() string {
	if p.migrate {
		return "two IMAP stores (Far the source, Near the destination), Sync Pull, Create Near, CopyArrivalDate yes, one connection to each, " +
			"state in a SyncState directory; does not sync keywords"
	}
	if p.twoway {
		return "Sync All, Create Both, Expunge None, FSync yes (its default), one connection, state in .mbsyncstate per folder; does not sync keywords"
	}
	return "Sync Pull, FSync yes (its default), one connection, state in .mbsyncstate per folder; does not sync keywords"
}

// channelMode is the Channel's direction settings.
func (p *mbsyncPeer) channelMode() string {
	if p.twoway {
		return "Create Both\nSync All\nExpunge None\n"
	}
	return "Create Near\nSync Pull\n"
}

func (p *mbsyncPeer) NewReplica(dir string, up upstream) (replica, error) {
	root := filepath.Join(dir, "maildir")
	if err := os.Mkdir(root, 0o700); err != nil { // mbsync does not create Path
		return nil, err
	}
	rc := filepath.Join(dir, "mbsyncrc")
	text := fmt.Sprintf(`FSync yes

IMAPAccount bench
Host %s
Port %d
User %s
Pass %s
%s None
AuthMechs LOGIN PLAIN

IMAPStore remote
Account bench

MaildirStore local
Path %s/
Inbox %s
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
%sSyncState *
`, up.Host, up.Port, rcString(up.User), rcString(up.Password), p.tlsKeyword, rcString(root), rcString(filepath.Join(root, "INBOX")),
		p.channelMode())
	if err := os.WriteFile(rc, []byte(text), 0o600); err != nil {
		return nil, err
	}
	return &mbsyncReplica{argv: []string{p.bin, "-c", rc, "-a", "-q"}, dir: dir, root: root}, nil
}

// NewMigration configures mbsync to copy the IMAP account src into the
// IMAP account dst: one Channel from an IMAP store to an IMAP store, Sync
// Pull and Create Near (new messages and folders go from Far to Near
// only), CopyArrivalDate yes (the internal dates are kept, as postfach
// migrate keeps them), its state in dir/state/.
func (p *mbsyncPeer) NewMigration(dir string, src, dst upstream) (migration, error) {
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		return nil, err
	}
	rc := filepath.Join(dir, "mbsyncrc")
	var text strings.Builder
	for _, a := range []struct {
		name string
		up   upstream
	}{{"source", src}, {"dest", dst}} {
		fmt.Fprintf(&text, `IMAPAccount %s
Host %s
Port %d
User %s
Pass %s
%s None
AuthMechs LOGIN PLAIN

IMAPStore %s
Account %s

`, a.name, a.up.Host, a.up.Port, rcString(a.up.User), rcString(a.up.Password), p.tlsKeyword, a.name, a.name)
	}
	fmt.Fprintf(&text, `Channel migrate
Far :source:
Near :dest:
Patterns *
Create Near
Sync Pull
CopyArrivalDate yes
SyncState %s/
`, rcString(state))
	if err := os.WriteFile(rc, []byte(text.String()), 0o600); err != nil {
		return nil, err
	}
	return &mbsyncMigration{argv: []string{p.bin, "-c", rc, "-a", "-q"}, dir: dir}, nil
}

// mbsyncMigration runs mbsync on its two IMAP stores.
type mbsyncMigration struct {
	argv []string
	dir  string
}

func (m *mbsyncMigration) Initial(ctx context.Context) (sample, error) { return m.sync(ctx) }
func (m *mbsyncMigration) Rerun(ctx context.Context) (sample, error)   { return m.sync(ctx) }

func (m *mbsyncMigration) sync(ctx context.Context) (sample, error) {
	s, _, err := runProcess(ctx, m.dir, m.argv...)
	return s, err
}

func (m *mbsyncMigration) Command() string { return shellQuote(m.argv) }
func (m *mbsyncMigration) Keywords() bool  { return false }

// AddsTUID: mbsync adds its X-TUID header line to the messages it APPENDs
// to an IMAP store as well (see mbsyncReplica.AddsTUID).
func (m *mbsyncMigration) AddsTUID() bool { return true }

// rcString quotes s for mbsyncrc when it needs quoting.
func rcString(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\#") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

type mbsyncReplica struct {
	argv      []string
	dir, root string
}

func (r *mbsyncReplica) Initial(ctx context.Context) (sample, error) { return r.sync(ctx) }
func (r *mbsyncReplica) Resync(ctx context.Context) (sample, error)  { return r.sync(ctx) }

func (r *mbsyncReplica) sync(ctx context.Context) (sample, error) {
	s, _, err := runProcess(ctx, r.dir, r.argv...)
	return s, err
}

func (r *mbsyncReplica) Maildir() string { return r.root }
func (r *mbsyncReplica) Command() string { return shellQuote(r.argv) }

// AddsTUID: mbsync (isync 1.4) writes "X-TUID: <12 characters>" as the last
// header line of every message it copies, to find the copy again.
func (r *mbsyncReplica) AddsTUID() bool { return true }

// Folder maps mbsync's layout (Inbox <root>/INBOX, Path <root>/,
// SubFolders Verbatim) to the IMAP name: INBOX is the directory INBOX, any
// other folder the directory of its name as the server sends it, the
// hierarchy delimiter '/' a directory level. isync 1.4 does not decode the
// server's modified UTF-7: "Entwürfe" is the directory "Entw&APw-rfe".
// The root itself holds no folder.
func (r *mbsyncReplica) Folder(rel string) (string, error) {
	switch rel {
	case ".":
		return "", errors.New("mbsync's Path, not a folder")
	case "INBOX":
		return "INBOX", nil
	}
	name, err := testenv.DecodeMUTF7(rel)
	if err != nil {
		return "", fmt.Errorf("not a folder name mbsync makes: %v", err)
	}
	return name, nil
}
