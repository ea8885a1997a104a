package configs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	toml "github.com/pelletier/go-toml/v2"
)

// Load reads the config file at path, fills in the defaults and checks it.
// A file that cannot be read gives the error of os.Open or its read; a bad
// file gives an ErrorList with every problem found. A file holding a
// password must be owned by the user (else refused) and should be readable
// by them only (else a warning marked Always): see checkSecretFile.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// One more byte than parse accepts, so that it sees a file too large.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	c, err := parse(path, abs, data)
	if err != nil {
		return nil, err
	}
	if err := checkSecretFile(c, path, fi); err != nil {
		return nil, err
	}
	return c, nil
}

// geteuid is os.Geteuid; a variable for the tests.
var geteuid = os.Geteuid

// checkSecretFile checks the file of a config that holds a password
// itself, as fetchmail checks its .fetchmailrc: owned by someone else (the
// effective user, root too, must own it) it is refused, since its owner
// can change what postfach does with the password; readable or writable by
// group or others it is loaded with a warning that every command prints.
func checkSecretFile(c *Config, name string, fi os.FileInfo) error {
	if !holdsPassword(c) {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != geteuid() {
		return ErrorList{{File: name, Msg: fmt.Sprintf(
			"holds a password but is owned by uid %d, not by you (uid %d): refused; own it and chmod 600 it", st.Uid, geteuid())}}
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		what := "read"
		if m&0o044 == 0 {
			what = "change"
		}
		w := &Error{File: name, Warning: true, Always: true, Msg: fmt.Sprintf(
			"holds a password, and group or others can %s it (mode %04o): chmod 600 %s", what, m, name)}
		c.Warnings = append(ErrorList{w}, c.Warnings...)
	}
	return nil
}

// holdsPassword reports whether an account, SMTP or [serve] table sets
// password.
func holdsPassword(c *Config) bool {
	for _, a := range c.Accounts {
		if a.Password != "" || a.SMTP != nil && a.SMTP.Password != "" {
			return true
		}
	}
	return c.Serve.Password != ""
}

const (
	// maxFileSize keeps go-toml, whose duplicate-key check is quadratic in
	// the keys of a table, fast; a real config is a few KiB.
	maxFileSize = 256 << 10
	// maxErrors is how many errors a bad file reports; the rest are counted.
	maxErrors = 100
)

// parse is Load for the contents of a file: name is how errors name the
// file, abs its absolute path.
func parse(name, abs string, data []byte) (*Config, error) {
	// go-toml finds every TOML error (syntax, duplicate keys, redefined
	// tables); the decoder below only deals with valid documents. It does
	// not decode into the Config types because it stops at the first value
	// of the wrong type, and Load reports them all.
	if len(data) > maxFileSize {
		return nil, ErrorList{{File: name, Msg: fmt.Sprintf("larger than %d KiB: not a postfach config file", maxFileSize>>10)}}
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		e := &Error{File: name, Msg: err.Error()}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			e.Line, e.Col = de.Position()
			e.Msg = strings.TrimPrefix(de.Error(), "toml: ")
		}
		return nil, ErrorList{e}
	}
	d := &decoder{file: name, dir: filepath.Dir(abs), idx: indexLines(data)}
	root := d.table("", doc)
	c := &Config{
		File:     abs,
		Store:    d.store(root.sub("store")),
		Accounts: d.accounts(root.tables("accounts")),
		Backup:   d.backup(root.sub("backup")),
		name:     name,
	}
	c.Serve = d.serve(root.sub("serve"), c.Accounts)
	root.done()
	if c.Store.Path != "" && c.Backup.Path != "" && within(c.Backup.Path, c.Store.Path) {
		d.errorf("backup.path", "must not be inside store.path (%s)", c.Store.Path)
	}
	if len(d.errs) > 0 {
		d.errs.sort()
		if n := len(d.errs) - maxErrors; n > 0 {
			d.errs = append(d.errs[:maxErrors], &Error{File: name, Msg: fmt.Sprintf("%d more errors", n)})
		}
		return nil, d.errs
	}
	d.warns.sort()
	c.Warnings = d.warns
	c.env = d.env
	return c, nil
}

func (d *decoder) store(t *table) Store {
	s := Store{Path: d.path(t, "path", "~/Mail")}
	if s.Path == "" && t == nil {
		d.errorf("store.path", "not set, and its default, ~/Mail, needs a home directory ($HOME is not set)")
	}
	t.done()
	return s
}

func (d *decoder) backup(t *table) Backup {
	b := Backup{
		Path:     d.path(t, "path", "~/MailBackups"),
		Schedule: t.str("schedule", ""),
		Keep:     nonNegative(t, "keep", 14),
	}
	if _, err := parseSchedule(b.Schedule); err != nil {
		t.errorf("schedule", "%v", err)
	}
	t.done()
	return b
}

// within reports whether path is dir or inside it; both are clean and
// absolute.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
