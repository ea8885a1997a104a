package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// postfachAccount is the account's name in the bench's configs, and so the
// name of its directory in the store.
const postfachAccount = "bench"

// postfachPeer runs the postfach binary under test.
type postfachPeer struct {
	bin     string
	version string
	kind    string // account kind: "imap" or "pop3"
	conns   int    // the account's connections setting; 0: postfach's default
	migrate bool   // the migrate scenario: postfach migrate, two accounts
}

// moduleRoot is the root directory of the module the bench runs in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the postfach module (run from the repository)")
	}
	return filepath.Dir(gomod), nil
}

// goBuild builds package pkg of the module into the binary bin as the
// README installs it (CGO_ENABLED=0: a static binary) and returns the
// command line it ran.
func goBuild(ctx context.Context, bin, pkg string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	argv := []string{"go", "build", "-o", bin, pkg}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 %s (in %s): %w\n%s", shellQuote(argv), root, err, out)
	}
	return "cd " + root + " && CGO_ENABLED=0 " + shellQuote(argv), nil
}

// buildPostfach builds ./agent/cmd/postfach of the module the bench runs in
// into dir, and describes the build (git commit, dirty or not).
func buildPostfach(ctx context.Context, dir string) (*postfachPeer, string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, "", err
	}
	bin := filepath.Join(dir, "postfach")
	build, err := goBuild(ctx, bin, "./agent/cmd/postfach")
	if err != nil {
		return nil, "", err
	}
	version := "build of " + root
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		version = "git " + strings.TrimSpace(string(out))
	}
	return &postfachPeer{bin: bin, version: version, kind: "imap"}, build, nil
}

func (p *postfachPeer) Name() string    { return "postfach" }
func (p *postfachPeer) Version() string { return p.version }
func (p *postfachPeer) Notes() string {
	if p.migrate {
		return "postfach migrate, default options: the source pulled into the store (4 connections, SQLite index), " +
			"then APPENDed to the destination (MULTIAPPEND where offered) and the destination read again to verify"
	}
	if p.kind == "pop3" {
		return "default options: one connection, pipelined RETR, fsync of every batch of 128 and of the directory, SQLite index with full text"
	}
	if p.conns > 0 {
		return fmt.Sprintf("connections = %d, other options default: fsync of every batch and directory, SQLite index", p.conns)
	}
	return "default options: 4 connections, fsync of every batch and directory, SQLite index"
}

func (p *postfachPeer) NewReplica(dir string, up upstream) (replica, error) {
	store := filepath.Join(dir, "store")
	conf := filepath.Join(dir, "postfach.toml")
	text := fmt.Sprintf("[store]\npath = %s\n", tomlString(store)) + accountTOML(postfachAccount, p.kind, up)
	if p.kind == "pop3" {
		text += "folder = \"INBOX\"\nkeep = true\n"
	}
	if p.conns > 0 {
		text += fmt.Sprintf("connections = %d\n", p.conns)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	return &postfachReplica{bin: p.bin, dir: dir, conf: conf, store: store}, nil
}

// accountTOML is an [[accounts]] table for the account name of kind on
// up, in plaintext (the bench's Dovecot).
func accountTOML(name, kind string, up upstream) string {
	return fmt.Sprintf(`
[[accounts]]
name = %s
kind = %s
host = %s
port = %d
tls = "none"
username = %s
password = %s
`, tomlString(name), tomlString(kind), tomlString(up.Host), up.Port, tomlString(up.User), tomlString(up.Password))
}

// NewMigration configures postfach migrate from the IMAP account src into
// the IMAP account dst (see migrate.go).
func (p *postfachPeer) NewMigration(dir string, src, dst upstream) (migration, error) {
	return p.newMigration(dir, "imap", src, dst)
}

// newMigration configures postfach migrate from src, an account of kind
// ("imap", or "pop3": keep, folder INBOX), into the IMAP account dst: a
// store in dir and two accounts, "source" and "dest".
func (p *postfachPeer) newMigration(dir, kind string, src, dst upstream) (migration, error) {
	store := filepath.Join(dir, "store")
	conf := filepath.Join(dir, "postfach.toml")
	text := fmt.Sprintf("[store]\npath = %s\n", tomlString(store)) + accountTOML("source", kind, src)
	if kind == "pop3" {
		text += "folder = \"INBOX\"\nkeep = true\n"
	}
	text += accountTOML("dest", "imap", dst)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	return &postfachMigration{postfachReplica{bin: p.bin, dir: dir, conf: conf, store: store}}, nil
}

// postfachMigration runs postfach migrate --from source --to dest.
type postfachMigration struct {
	postfachReplica
}

func (m *postfachMigration) args() []string {
	return m.argv("migrate", "--from", "source", "--to", "dest")
}

func (m *postfachMigration) Initial(ctx context.Context) (sample, error) { return m.migrate(ctx) }
func (m *postfachMigration) Rerun(ctx context.Context) (sample, error)   { return m.migrate(ctx) }

func (m *postfachMigration) migrate(ctx context.Context) (sample, error) {
	s, out, err := runProcess(ctx, m.dir, m.args()...)
	m.out = out
	return s, err
}

func (m *postfachMigration) Command() string { return shellQuote(m.args()) }
func (m *postfachMigration) Keywords() bool  { return true }

// Copied is the number of messages the last run says it copied ("source
// -> dest: 10000 messages copied (...) in ..."), when it also says it
// verified all of them on the destination ("verified: all 10000 source
// messages are on the destination").
func (m *postfachMigration) Copied() (int, bool) {
	n, copied, verified := 0, false, false
	for _, line := range strings.Split(string(m.out), "\n") {
		if _, err := fmt.Sscanf(line, "source -> dest: %d messages copied", &n); err == nil {
			copied = true
		}
		if strings.HasPrefix(line, "verified: all ") {
			verified = true
		}
	}
	return n, copied && verified
}

type postfachReplica struct {
	bin, dir, conf, store string
	out                   []byte // stdout of the last sync
}

func (r *postfachReplica) argv(args ...string) []string {
	return append([]string{r.bin, "--config", r.conf}, args...)
}

func (r *postfachReplica) Initial(ctx context.Context) (sample, error) { return r.sync(ctx) }
func (r *postfachReplica) Resync(ctx context.Context) (sample, error)  { return r.sync(ctx) }

func (r *postfachReplica) sync(ctx context.Context) (sample, error) {
	s, out, err := runProcess(ctx, r.dir, r.argv("sync")...)
	r.out = out
	return s, err
}

// Fetched is the number of messages the last sync of a POP3 account says it
// downloaded ("bench: 10000 new (...), 0 deleted on the server in ...").
func (r *postfachReplica) Fetched() (int, bool) {
	for _, line := range strings.Split(string(r.out), "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "bench: %d new", &n); err == nil {
			return n, true
		}
	}
	return 0, false
}

func (r *postfachReplica) Maildir() string { return r.store }
func (r *postfachReplica) Command() string { return shellQuote(r.argv("sync")) }

// Folder maps postfach's layout, <store>/<account>/<Folder>/<Sub> with each
// component encoded (package maildir), to the IMAP name.
func (r *postfachReplica) Folder(rel string) (string, error) {
	acct := maildir.EncodeName(postfachAccount)
	rest, ok := strings.CutPrefix(rel, acct+"/")
	if !ok {
		return "", fmt.Errorf("not in the account's directory %s", acct)
	}
	name, err := maildir.DecodeFolder(rest)
	if err != nil {
		return "", fmt.Errorf("not a folder name postfach makes: %v", err)
	}
	return name, nil
}

// Keywords reads the keywords of every message file from postfach's index:
// postfach keeps them there, not in file names.
func (r *postfachReplica) Keywords(ctx context.Context) (map[string]string, error) {
	st, err := index.OpenStore(r.store)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	out := map[string]string{}
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account(postfachAccount)
		if err != nil {
			return fmt.Errorf("account %s: %w", postfachAccount, err)
		}
		folders, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for _, f := range folders {
			rows, err := tx.SyncRows(f.ID) // no header fields
			if err != nil {
				return err
			}
			for _, m := range rows {
				out[filepath.Join(r.store, f.Path, m.File)] = strings.Join(slices.Sorted(slices.Values(m.Keywords)), " ")
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postfach's index: %w", err)
	}
	return out, nil
}

// Check compares postfach's own count (status --json) with the server's,
// folder by folder.
func (r *postfachReplica) Check(ctx context.Context, want inventory) error {
	argv := r.argv("status", "--json")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = r.dir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w", shellQuote(argv), err)
	}
	var st struct {
		Accounts []struct {
			Name     string `json:"name"`
			Messages int    `json:"messages"`
			Error    string `json:"error"`
			Folders  []struct {
				Name     string `json:"name"`
				Messages int    `json:"messages"`
				Error    string `json:"error"`
			} `json:"folders"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("status --json: %w", err)
	}
	if len(st.Accounts) != 1 {
		return fmt.Errorf("status --json: %d accounts, want 1", len(st.Accounts))
	}
	acct := st.Accounts[0]
	if acct.Error != "" {
		return fmt.Errorf("status: account error %q", acct.Error)
	}
	got := map[string]int{}
	for _, f := range acct.Folders {
		if f.Error != "" {
			return fmt.Errorf("status: folder %s: error %q", f.Name, f.Error)
		}
		got[f.Name] = f.Messages
	}
	var diffs []string
	for name, fc := range want {
		if got[name] != fc.Messages {
			diffs = append(diffs, fmt.Sprintf("%s: %d, server has %d", name, got[name], fc.Messages))
		}
	}
	for name, n := range got {
		if _, ok := want[name]; !ok && n != 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %d, not on the server", name, n))
		}
	}
	if acct.Messages != want.total().Messages {
		diffs = append(diffs, fmt.Sprintf("account: %d messages, server has %d", acct.Messages, want.total().Messages))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("status --json disagrees with the server: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
