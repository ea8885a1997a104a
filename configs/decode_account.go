package configs

import (
	"slices"
	"strings"
	"time"
)

var (
	imapKeys = []string{"folders", "direction", "expunge", "create_folders", "remove_folders",
		"archive", "max_age_days", "max_size", "folder_map", "max_delete_percent", "connections", "namespace_prefix",
		"idle_folders"}
	pop3Keys    = []string{"folder", "keep", "delete_after_days"}
	secretKeys  = []string{"password", "password_env", "password_cmd", "token_cmd"}
	tlsModes    = []string{"implicit", "starttls", "none"}
	defaultPort = map[string]map[string]int{
		"imap": {"implicit": 993, "starttls": 143, "none": 143},
		"pop3": {"implicit": 995, "starttls": 110, "none": 110},
		"smtp": {"implicit": 465, "starttls": 587, "none": 25},
	}
)

func (d *decoder) accounts(ts []*table) []Account {
	accts := make([]Account, 0, len(ts))
	seen := map[string]*table{} // lower-cased name -> first account with it
	for _, t := range ts {
		a := d.account(t)
		if a.Name != "" {
			// Case-insensitive: the name is a directory, and file systems
			// may fold case.
			k := strings.ToLower(a.Name)
			if first, ok := seen[k]; ok {
				t.errorf("name", "duplicate account name %q (also at line %d)", a.Name, first.line("name"))
			} else {
				seen[k] = t
			}
		}
		accts = append(accts, a)
	}
	return accts
}

func (d *decoder) account(t *table) Account {
	a := Account{Line: d.idx.line(t.path)}
	a.Name = required(t, "name")
	if msg := checkName(a.Name); a.Name != "" && msg != "" {
		t.errorf("name", "%s", msg)
	}
	if t.has("kind") {
		a.Kind = oneOf(t, "kind", "", "imap", "pop3")
	} else {
		t.get("kind")
		t.errorf("kind", `required ("imap" or "pop3")`)
	}
	a.Host, a.TLS, a.Port, a.AllowInsecure = d.endpoint(t, a.Kind)
	a.CAFile = d.path(t, "ca_file", "")
	if a.CAFile != "" {
		t.note("ca_file", envCheck{caFile: a.CAFile})
	}
	a.Username = required(t, "username")
	a.PollInterval = duration(t, "poll_interval", 5*time.Minute, 10*time.Second)
	a.Password, a.PasswordEnv, a.PasswordCmd, a.TokenCmd, _ = secretSource(t, true)

	switch a.Kind {
	case "imap":
		d.imap(t, &a)
		wrongKind(t, pop3Keys, "pop3")
	case "pop3":
		d.pop3(t, &a)
		wrongKind(t, imapKeys, "imap")
	default: // already reported; still check the types of the rest
		var x Account
		d.imap(t, &x)
		d.pop3(t, &x)
	}
	a.Addresses = addresses(t, a.Username)
	if st := t.sub("smtp"); st != nil {
		a.SMTP = d.smtp(st, &a)
	}
	t.done()
	return a
}

// addresses decodes addresses: the account's sender addresses, default
// the username when it is one.
func addresses(t *table, username string) []string {
	var def []string
	if strings.Contains(username, "@") {
		def = []string{username}
	}
	as := t.strings("addresses", def)
	for _, a := range as {
		local, domain, ok := strings.Cut(a, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(a, " \t<>\"(),;:[]\\") || strings.IndexFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			t.errorf("addresses", "%q is not a mail address (write it as name@example.org)", a)
		}
	}
	if len(as) == 0 {
		return nil
	}
	return as
}

// endpoint decodes host, tls, port and allow_insecure; kind picks the
// default port ("" when unknown: the port is then only range-checked).
func (d *decoder) endpoint(t *table, kind string) (host, mode string, port int, insecure bool) {
	host = required(t, "host")
	if msg := checkHost(host); host != "" && msg != "" {
		t.errorf("host", "%s", msg)
		host = ""
	}
	mode = oneOf(t, "tls", "implicit", tlsModes...)
	port = intRange(t, "port", defaultPort[kind][mode], 1, 65535)
	insecure = t.boolean("allow_insecure", false)
	if mode == "none" && !insecure && host != "" && !isLoopback(host) {
		t.errorf("tls", `"none" sends the password in clear text to %s, which is not loopback; set allow_insecure = true to allow it`, host)
	}
	return host, mode, port, insecure
}

// secretSource decodes the one secret source of t (token_cmd is one: an
// OAuth2 token instead of a password). With need, having none is an
// error; ok reports whether t has one.
func secretSource(t *table, need bool) (password, env, cmd, tokenCmd string, ok bool) {
	var set []string
	for _, k := range secretKeys {
		if t.has(k) {
			set = append(set, k)
		}
	}
	slices.SortStableFunc(set, func(a, b string) int { return t.line(a) - t.line(b) })
	for _, k := range set[min(1, len(set)):] {
		if k == "token_cmd" || set[0] == "token_cmd" {
			t.errorf(k, "conflicts with %s (line %d): token_cmd signs in with an OAuth2 token instead of a password; set either token_cmd or one of password, password_env or password_cmd", set[0], t.line(set[0]))
			continue
		}
		t.errorf(k, "conflicts with %s (line %d): set only one of password, password_env or password_cmd", set[0], t.line(set[0]))
	}
	if len(set) == 0 && need {
		t.d.errorf(t.path, "no password: set one of password, password_env or password_cmd (or token_cmd for an OAuth2 token)")
	}
	env = nonEmpty(t, "password_env", "")
	if env != "" && len(set) == 1 {
		t.note("password_env", envCheck{env: env})
	}
	return nonEmpty(t, "password", ""), env, nonEmpty(t, "password_cmd", ""), nonEmpty(t, "token_cmd", ""), len(set) > 0
}

func wrongKind(t *table, keys []string, kind string) {
	for _, k := range keys {
		if t.has(k) {
			t.get(k)
			t.errorf(k, "only valid for kind = %q", kind)
		}
	}
}

func (d *decoder) imap(t *table, a *Account) {
	a.Folders = folders(t)
	a.Direction = oneOf(t, "direction", "both", "both", "pull", "push")
	a.Expunge = oneOf(t, "expunge", "both", "both", "local", "remote", "none")
	a.CreateFolders = t.boolean("create_folders", true)
	a.RemoveFolders = t.boolean("remove_folders", false)
	a.Archive = t.boolean("archive", false)
	a.MaxAgeDays = nonNegative(t, "max_age_days", 0)
	a.MaxSize = maxSize(t)
	a.FolderMap = folderMap(t, a.Folders)
	a.MaxDeletePercent = intRange(t, "max_delete_percent", 25, 0, 100)
	a.Connections = intRange(t, "connections", 4, 1, 16)
	a.NamespacePrefix = namespacePrefix(t)
	a.IdleFolders = idleFolders(t, a.Connections)
}

// idleFolders decodes idle_folders: local folder names, default ["INBOX"]
// (none with connections = 1), fewer than connections (each holds a connection open; the sync needs
// one).
func idleFolders(t *table, connections int) []string {
	if !t.has("idle_folders") && connections < 2 {
		return nil // one connection: the sync's; the agent polls
	}
	fs := t.strings("idle_folders", []string{"INBOX"})
	for _, f := range fs {
		if msg := checkFolderName(f); msg != "" {
			t.errorf("idle_folders", "%q: %s", f, msg)
		}
	}
	if len(fs) >= connections {
		t.errorf("idle_folders", "%d folders, but connections = %d: each IDLE holds a connection open, and the sync needs one", len(fs), connections)
	}
	return fs
}

// duration decodes a duration such as "5m" or "90s" (Go's syntax), at
// least lo.
func duration(t *table, k string, def, lo time.Duration) time.Duration {
	if !t.has(k) {
		return def
	}
	if v, _ := t.get(k); isNumber(v) {
		t.errorf(k, "must be a duration in quotes with its unit, such as \"%vs\" or \"5m\", not a bare number", v)
		return def
	}
	s := t.str(k, "")
	if !isA[string](t, k) {
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		t.errorf(k, "%q is not a duration (write it as 90s, 5m or 1h30m)", s)
		return def
	case d < lo:
		t.errorf(k, "must be at least %s, not %s", lo, d)
		return def
	}
	return d
}

// isNumber reports whether a TOML value is an integer or a float.
func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}

// namespacePrefix decodes namespace_prefix: nil when absent (the server's
// NAMESPACE says), else the prefix as the server spells it ("INBOX.";
// "" for none). A prefix is a server folder name: no control characters,
// no LIST wildcards, no blanks around it.
func namespacePrefix(t *table) *string {
	if !t.has("namespace_prefix") {
		return nil
	}
	p := t.str("namespace_prefix", "")
	switch {
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		t.errorf("namespace_prefix", "must not hold control characters")
	case strings.ContainsAny(p, "*%"):
		t.errorf("namespace_prefix", `must not hold "*" or "%%": it is a folder name, not a pattern (for example "INBOX.")`)
	case strings.TrimSpace(p) != p:
		t.errorf("namespace_prefix", "must not start or end with blanks")
	case len(p) > 255:
		t.errorf("namespace_prefix", "longer than 255 bytes")
	}
	return &p
}

func (d *decoder) pop3(t *table, a *Account) {
	a.Folder = nonEmpty(t, "folder", "INBOX")
	if msg := checkFolderName(a.Folder); msg != "" {
		t.errorf("folder", "%s", msg)
		a.Folder = "INBOX"
	}
	a.Keep = t.boolean("keep", true)
	a.DeleteAfterDays = nonNegative(t, "delete_after_days", 0)
	if a.DeleteAfterDays > 0 && !a.Keep {
		t.errorf("delete_after_days", "needs keep = true (with keep = false messages are deleted once downloaded)")
	}
}

// folders decodes the folder patterns; with exclusions only, "*" is put
// first.
func folders(t *table) []string {
	pats := t.strings("folders", []string{"*"})
	if t.has("folders") && len(pats) == 0 {
		t.errorf("folders", `must not be empty (["*"] is every folder)`)
	}
	include := false
	for i, p := range pats {
		switch {
		case p == "" || p == "!":
			t.d.errorf(joinIndex(t.key("folders"), i+1), "empty pattern")
		case !strings.HasPrefix(p, "!"):
			include = true
		}
	}
	if !include && len(pats) > 0 {
		pats = append([]string{"*"}, pats...)
	}
	return pats
}

func maxSize(t *table) int64 {
	v, ok := t.get("max_size")
	if !ok {
		return 0
	}
	switch v := v.(type) {
	case int64:
		if v < 0 {
			t.errorf("max_size", "must not be negative")
			return 0
		}
		return v
	case string:
		n, err := parseSize(v)
		if err != nil {
			t.errorf("max_size", "%v, not %q", err, v)
		}
		return n
	}
	t.typeError(t.key("max_size"), `an integer or a string like "10MB"`, v)
	return 0
}

func (d *decoder) smtp(t *table, a *Account) *SMTP {
	s := &SMTP{Line: d.idx.line(t.path), account: a.Name}
	s.Host, s.TLS, s.Port, s.AllowInsecure = d.endpoint(t, "smtp")
	s.CAFile = d.path(t, "ca_file", "")
	if s.CAFile != "" {
		t.note("ca_file", envCheck{caFile: s.CAFile})
	}
	s.Username = nonEmpty(t, "username", a.Username)
	var own bool
	s.Password, s.PasswordEnv, s.PasswordCmd, s.TokenCmd, own = secretSource(t, false)
	if !own {
		s.Password, s.PasswordEnv, s.PasswordCmd, s.TokenCmd = a.Password, a.PasswordEnv, a.PasswordCmd, a.TokenCmd
	}
	s.SaveSent = t.boolean("save_sent", true)
	s.SentFolder = t.str("sent_folder", "")
	if msg := checkFolderName(s.SentFolder); s.SentFolder != "" && msg != "" {
		t.errorf("sent_folder", "%q: %s", s.SentFolder, msg)
	}
	s.QueueExpiry = duration(t, "queue_expiry", 5*24*time.Hour, time.Minute)
	s.QueueWarn = duration(t, "queue_warn", 4*time.Hour, time.Minute)
	if s.QueueWarn >= s.QueueExpiry {
		t.errorf("queue_warn", "%s is not shorter than queue_expiry (%s): the warning would never come", s.QueueWarn, s.QueueExpiry)
	}
	t.done()
	return s
}
