package testenv

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// User is a mail account on the test server.
type User struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// TLSMode selects the certificate Dovecot presents.
type TLSMode int

const (
	// TLSOff serves plaintext only (IMAP, POP3). The default.
	TLSOff TLSMode = iota
	// TLSOn adds STARTTLS and implicit-TLS IMAPS and POP3S ports with a
	// certificate for 127.0.0.1 and localhost, signed by a fresh CA whose
	// certificate is Dovecot.CertPEM.
	TLSOn
	// TLSWrongHost is TLSOn with a certificate for "wrong.invalid" only: a
	// client that trusts CertPEM must still refuse it (name mismatch).
	TLSWrongHost
	// TLSExpired is TLSOn with a certificate that expired a day ago.
	TLSExpired
)

func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSOn:
		return "on"
	case TLSWrongHost:
		return "wrong-host"
	case TLSExpired:
		return "expired"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// Config describes a private Dovecot instance.
type Config struct {
	// Dir holds the configuration, the logs, the sockets and the mail (see
	// the package doc). Required; created if missing. As root, it is made
	// world-searchable (0755) and its parents must already be.
	Dir string

	// Users to create, at least one. Names may look like addresses
	// ("me@example.org") but must not start with '.' or hold '/', '\',
	// '%', ':', blanks or control characters; passwords must not hold ':'
	// or line breaks.
	Users []User

	// TLS selects the certificate; default TLSOff.
	TLS TLSMode

	// Binary is the dovecot executable; default "dovecot" from $PATH, then
	// /usr/sbin/dovecot.
	Binary string

	// Debug turns on auth_debug and mail_debug in the log.
	Debug bool

	// Extra is appended verbatim to dovecot.conf, to override settings.
	Extra string

	// NamespacePrefix and NamespaceSep shape the personal namespace:
	// default no prefix and '/'. "INBOX." with '.' is the shape of many
	// hosting providers' servers: every folder lives below INBOX, and a
	// top-level name is refused.
	NamespacePrefix string
	NamespaceSep    rune
	// Capability, when set, replaces the capabilities IMAP announces after
	// login (imap_capability); see WithoutExtensions.
	Capability string

	// OAuth2 adds XOAUTH2 and OAUTHBEARER sign-in with tokens from
	// Dovecot.IssueToken, checked by an introspection endpoint the
	// harness runs (see WithOAuth2). Dovecot 2.3 only.
	OAuth2 bool
}

// Dovecot is a running private Dovecot instance.
type Dovecot struct {
	Host                 string // "127.0.0.1"
	IMAPPort, POP3Port   int    // plaintext (STARTTLS offered with TLS)
	IMAPSPort, POP3SPort int    // implicit TLS; 0 when TLS is off
	Dir                  string // Config.Dir
	ConfigFile           string // Dir/dovecot.conf
	LogFile              string // Dir/dovecot.log
	Version              string // e.g. "2.3.19.1"
	TLS                  TLSMode

	// CertPEM is the PEM certificate of the CA that signed the server
	// certificate, and CertFile a file holding it (a client's ca_file).
	// Empty when TLS is off.
	CertPEM  []byte
	CertFile string

	users    map[string]string
	uid, gid int // owner of the mail files

	bin      string // the dovecot executable, for Start
	greeting string // the greeting configured in dovecot.conf
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	waitErr  error
	output   *Buffer      // dovecot's stdout and stderr
	issuer   *tokenIssuer // with Config.OAuth2
	stopOnce sync.Once
	stopErr  error
}

// startAttempts bounds retries when a chosen port was taken meanwhile.
const startAttempts = 5

// NewDovecot writes the configuration and starts Dovecot in the foreground
// as a child process (`dovecot -F -c Dir/dovecot.conf`). It returns once the
// IMAP port greets. The caller must call Stop.
func NewDovecot(cfg Config) (*Dovecot, error) {
	if cfg.Dir == "" {
		return nil, errors.New("testenv: Config.Dir is required")
	}
	if len(cfg.Users) == 0 {
		return nil, errors.New("testenv: no users")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(dir, "%$\"\\ \t\n{}") {
		return nil, fmt.Errorf("testenv: Dovecot cannot use the directory %q: it holds a character Dovecot expands or splits on", dir)
	}
	bin, err := FindDovecot(cfg.Binary)
	if err != nil {
		return nil, err
	}
	version, err := dovecotVersion(bin)
	if err != nil {
		return nil, err
	}

	d := &Dovecot{
		Host:       "127.0.0.1",
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "dovecot.conf"),
		LogFile:    filepath.Join(dir, "dovecot.log"),
		Version:    version,
		TLS:        cfg.TLS,
		users:      map[string]string{},
	}
	data := confData{
		Dir:      dir,
		Users:    filepath.Join(dir, "users"),
		Log:      d.LogFile,
		Debug:    cfg.Debug,
		Extra:    cfg.Extra,
		Greeting: "testenv " + randomHex(8) + " ready.",

		NamespaceSep:    "/",
		NamespacePrefix: cfg.NamespacePrefix,
		Capability:      cfg.Capability,
	}
	if cfg.NamespaceSep != 0 {
		data.NamespaceSep = string(cfg.NamespaceSep)
	}
	if err := d.prepare(cfg, &data); err != nil {
		return nil, err
	}

	started := false
	tmpl := conf23
	if versionAtLeast(version, 2, 4) {
		tmpl = conf24
	}
	if cfg.OAuth2 {
		if tmpl != conf23 {
			return nil, fmt.Errorf("testenv: OAuth2 needs Dovecot 2.3 (this is %s, which checks tokens without a passdb)", version)
		}
		if d.issuer, data.OAuth2Conf, err = startIssuer(dir); err != nil {
			return nil, err
		}
		defer func() {
			if !started {
				d.issuer.close()
			}
		}()
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			return nil, err
		}
		data.IMAPPort, data.POP3Port = ports[0], ports[1]
		if data.TLS {
			data.IMAPSPort, data.POP3SPort = ports[2], ports[3]
		}
		var conf bytes.Buffer
		if err := tmpl.Execute(&conf, data); err != nil {
			return nil, fmt.Errorf("testenv: dovecot.conf: %w", err)
		}
		if err := os.WriteFile(d.ConfigFile, conf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		d.IMAPPort, d.POP3Port = data.IMAPPort, data.POP3Port
		d.IMAPSPort, d.POP3SPort = data.IMAPSPort, data.POP3SPort
		err = d.start(bin, data.Greeting)
		if err == nil {
			started = true
			return d, nil
		}
		if attempt < startAttempts && d.portClash() {
			continue
		}
		return nil, err
	}
}

// prepare creates the directory layout, the users file and the TLS files,
// and decides who owns the mail.
func (d *Dovecot) prepare(cfg Config, data *confData) error {
	root := os.Geteuid() == 0
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return err
	}
	if root {
		// Mail and login processes run as nobody and dovenull: they need to
		// reach the sockets and the mail below Dir.
		if err := os.Chmod(d.Dir, 0o755); err != nil {
			return err
		}
		if err := checkSearchable(d.Dir); err != nil {
			return err
		}
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("testenv: running as root, mail must belong to nobody: %w", err)
		}
		d.uid, _ = strconv.Atoi(u.Uid)
		d.gid, _ = strconv.Atoi(u.Gid)
		if g, err := user.LookupGroup("nogroup"); err == nil {
			d.gid, _ = strconv.Atoi(g.Gid)
		}
	} else {
		d.uid, d.gid = os.Getuid(), os.Getgid()
		u, err := user.Current()
		if err != nil {
			return fmt.Errorf("testenv: current user: %w", err)
		}
		g, err := user.LookupGroupId(strconv.Itoa(d.gid))
		if err != nil {
			return fmt.Errorf("testenv: current group: %w", err)
		}
		data.NonRoot = true
		data.UserName, data.GroupName = u.Username, g.Name
	}

	for _, sub := range []string{"run", "state", "mail", "home"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	var users strings.Builder
	for _, u := range cfg.Users {
		if u.Name == "" || u.Name[0] == '.' || strings.ContainsAny(u.Name, ":/\\ \t\r\n\x00%") || strings.ContainsAny(u.Password, ":\r\n\x00") {
			return fmt.Errorf("testenv: bad user name or password for %q", u.Name)
		}
		if _, dup := d.users[u.Name]; dup {
			return fmt.Errorf("testenv: duplicate user %q", u.Name)
		}
		d.users[u.Name] = u.Password
		home := filepath.Join(d.Dir, "home", u.Name)
		fmt.Fprintf(&users, "%s:{PLAIN}%s:%d:%d::%s::\n", u.Name, u.Password, d.uid, d.gid, home)
		for _, p := range []string{home, d.MailDir(u.Name)} {
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
			if err := d.chown(p); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(data.Users, []byte(users.String()), 0o644); err != nil {
		return err
	}

	if cfg.TLS != TLSOff {
		ca, cert, key, err := NewCertificates(cfg.TLS)
		if err != nil {
			return fmt.Errorf("testenv: certificates: %w", err)
		}
		d.CertPEM = ca
		d.CertFile = filepath.Join(d.Dir, "ca.pem")
		data.TLS = true
		data.CertFile = filepath.Join(d.Dir, "cert.pem")
		data.KeyFile = filepath.Join(d.Dir, "key.pem")
		for _, f := range []struct {
			path string
			data []byte
			mode os.FileMode
		}{{d.CertFile, ca, 0o644}, {data.CertFile, cert, 0o644}, {data.KeyFile, key, 0o600}} {
			if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start starts a stopped instance again with the same configuration: the
// same ports, users and mail. It returns once the IMAP port greets, and
// fails if the instance is still running or another process took one of
// its ports meanwhile. Tests use Stop and Start for a server outage.
func (d *Dovecot) Start() error {
	if d.cmd != nil {
		select {
		case <-d.exited:
		default:
			return errors.New("testenv: Start: dovecot is still running")
		}
	}
	if err := d.start(d.bin, d.greeting); err != nil {
		if d.portClash() {
			return fmt.Errorf("testenv: Start: a port of the stopped instance was taken meanwhile: %w", err)
		}
		return err
	}
	return nil
}

// start runs dovecot and waits until the IMAP port greets with greeting.
func (d *Dovecot) start(bin, greeting string) error {
	d.bin, d.greeting = bin, greeting
	d.output = &Buffer{}
	cmd := exec.Command(bin, "-F", "-c", d.ConfigFile)
	cmd.Dir = d.Dir
	cmd.Stdout = d.output
	cmd.Stderr = d.output
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: starting dovecot: %w", err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	d.stopOnce = sync.Once{}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("testenv: dovecot exited at start (%v): %s%s", d.waitErr, d.output.String(), d.logTail(20))
		default:
		}
		if greets(d.IMAPAddr(), greeting) {
			return nil
		}
		if time.Now().After(deadline) {
			d.Stop()
			return fmt.Errorf("testenv: dovecot did not greet on %s within 20s: %s%s", d.IMAPAddr(), d.output.String(), d.logTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greets reports whether addr answers with an IMAP greeting holding want.
// Checking the text guards against another process on a reused port.
func greets(addr, want string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "* OK") && strings.Contains(line, want)
}

// portClash reports whether the last start failed on a port in use.
func (d *Dovecot) portClash() bool {
	log, _ := os.ReadFile(d.LogFile)
	return strings.Contains(d.output.String()+string(log), "Address already in use")
}

// Stop terminates Dovecot and its children (SIGTERM to the process group,
// then SIGKILL after 10s) and waits for the master to exit. It can be
// called more than once; Start runs the instance again.
func (d *Dovecot) Stop() error {
	d.stopOnce.Do(func() {
		if d.cmd == nil || d.cmd.Process == nil {
			return
		}
		pid := d.cmd.Process.Pid
		select {
		case <-d.exited:
		default:
			// The whole group: signalling only the master makes it wait a
			// second for its log process.
			signalGroup(pid, syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				d.stopErr = errors.New("testenv: dovecot did not stop within 10s; killed")
			}
		}
		// Children that outlive the master (none, normally) share its group.
		signalGroup(pid, syscall.SIGKILL)
		<-d.exited
	})
	return d.stopErr
}

// Log returns the contents of the Dovecot log file and Dovecot's own output.
func (d *Dovecot) Log() string {
	log, _ := os.ReadFile(d.LogFile)
	out := ""
	if d.output != nil {
		out = d.output.String()
	}
	return out + string(log)
}

func (d *Dovecot) logTail(n int) string {
	log, err := os.ReadFile(d.LogFile)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n" + d.LogFile + ":\n" + strings.Join(lines, "\n")
}

// IMAPAddr is the plaintext IMAP address, host:port.
func (d *Dovecot) IMAPAddr() string { return d.addr(d.IMAPPort) }

// POP3Addr is the plaintext POP3 address, host:port.
func (d *Dovecot) POP3Addr() string { return d.addr(d.POP3Port) }

// IMAPSAddr is the implicit-TLS IMAP address; "" when TLS is off.
func (d *Dovecot) IMAPSAddr() string { return d.addr(d.IMAPSPort) }

// POP3SAddr is the implicit-TLS POP3 address; "" when TLS is off.
func (d *Dovecot) POP3SAddr() string { return d.addr(d.POP3SPort) }

func (d *Dovecot) addr(port int) string {
	if port == 0 {
		return ""
	}
	return net.JoinHostPort(d.Host, strconv.Itoa(port))
}

// MailDir is the on-disk Maildir++ root of user (its INBOX), as Dovecot
// sees it.
func (d *Dovecot) MailDir(user string) string {
	return filepath.Join(d.Dir, "mail", user)
}

// Password returns user's password.
func (d *Dovecot) Password(user string) (string, bool) {
	p, ok := d.users[user]
	return p, ok
}

// TLSConfig returns a client configuration that trusts CertPEM and nothing
// else. Nil when TLS is off.
func (d *Dovecot) TLSConfig() *tls.Config {
	if d.CertPEM == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.CertPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Dial connects over plaintext IMAP and logs in as user. The caller closes
// the client.
func (d *Dovecot) Dial(user string) (*imapclient.Client, error) {
	pass, ok := d.users[user]
	if !ok {
		return nil, fmt.Errorf("testenv: no user %q", user)
	}
	c, err := imapclient.DialInsecure(d.IMAPAddr(), nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("testenv: login %s: %w", user, err)
	}
	return c, nil
}

// chown gives path to the mail owner when running as root.
func (d *Dovecot) chown(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(path, d.uid, d.gid)
}

// FindDovecot returns the path of the dovecot binary: bin if set, else
// "dovecot" from $PATH, else /usr/sbin/dovecot (not in a normal user's
// $PATH on Debian). The error wraps exec.ErrNotFound when there is none.
func FindDovecot(bin string) (string, error) {
	if bin != "" {
		return exec.LookPath(bin)
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("testenv: dovecot: %w (install dovecot-imapd and dovecot-pop3d)", exec.ErrNotFound)
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)[.\d]*`)

func dovecotVersion(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("testenv: %s --version: %w", bin, err)
	}
	v := versionRE.FindString(strings.TrimSpace(string(out)))
	if v == "" {
		return "", fmt.Errorf("testenv: %s --version: cannot parse %q", bin, out)
	}
	return v, nil
}

func versionAtLeast(v string, major, minor int) bool {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return ma > major || ma == major && mi >= minor
}

// checkSearchable fails when a parent of dir is not searchable by others.
func checkSearchable(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("testenv: %s (mode %v) is not searchable by other users; Dovecot's mail and login processes cannot reach %s", p, fi.Mode().Perm(), dir)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. Another process
// may take one before Dovecot binds it; NewDovecot retries then.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
